"""``headrace tasks logs DAG TASK RUN [--try N] [--map-index I] [--follow]``: print a try's log.

The log is read as the API reads it (:mod:`headrace.logs.locate`): the local file when this host has it,
else the remote copy in ``logging.remote_base_log_folder``, so a log stays readable after its worker and its
disk are gone. Secrets stored as variables and connections are masked (``***``), whole lines at a time.
"""

from __future__ import annotations

import sys
import time

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.cli.common import app_state, parse_date
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.exceptions import DagRunNotFound, HeadraceError, NotFound
from headrace.logs.locate import TryLog, locate, read_log
from headrace.secrets_store import stored_secrets_masker
from headrace.storage.stores import Stores

CHUNK_BYTES = 1024 * 1024
"""Bytes read at a time."""
FOLLOW_POLL_SECONDS = 0.5
"""How often ``--follow`` reads the log again while the try runs."""


def find_run(session: Session, dag_id: str, run_id: str) -> DagRun:
    """``dag_id``'s run named by ``run_id``: its run id or an ISO logical date. Raises ``DagRunNotFound``."""
    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
    if run is None:
        try:
            when = parse_date(run_id)
        except HeadraceError:
            when = None
        if when is not None:
            run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == when)).first()
    if run is None:
        raise DagRunNotFound(
            f"DAG {dag_id!r} has no run with run id or logical date {run_id!r}; see `headrace dags list-runs {dag_id}`"
        )
    return run


def _task_instance(session: Session, dag_id: str, task_id: str, run_id: str, map_index: int) -> TaskInstance:
    """The task instance of ``task_id`` at ``map_index`` in the run named by run id or ISO logical date."""
    run = find_run(session, dag_id, run_id)
    ti = session.scalars(
        select(TaskInstance).where(
            TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id, TaskInstance.map_index == map_index
        )
    ).one_or_none()
    if ti is None:
        where = f" at map index {map_index}" if map_index >= 0 else ""
        raise NotFound(f"DAG run {run.run_id!r} of {dag_id!r} has no task instance {task_id!r}{where}")
    return ti


def _where(db: Database, settings: Settings, ti_id: int, try_number: int) -> TryLog:
    with db.read_session() as session:
        ti = session.get(TaskInstance, ti_id)
        if ti is None:  # its run was deleted meanwhile: nothing more will come
            raise NotFound("the task instance was deleted")
        return locate(session, settings, ti, try_number)


def logs_cmd(
    ctx: typer.Context,
    dag_id: str,
    task_id: str,
    run_id: str = typer.Argument(
        ..., metavar="RUN_ID|LOGICAL_DATE", help="A run id of the DAG or its ISO logical date."
    ),
    try_number: int | None = typer.Option(
        None, "--try", min=1, help="The try whose log to print (default: the latest)."
    ),
    map_index: int = typer.Option(-1, "--map-index", help="The map index of a mapped task's instance."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing the log as it grows until the try ends."),
) -> None:
    """Print the log of a try of TASK in a DAG run: the local file, else its remote copy
    (``logging.remote_base_log_folder``). Secrets are masked. With ``--follow``, print lines as they come
    until the try has ended."""
    state = app_state(ctx)
    db = state.migrated_db()
    stores = Stores(state.settings, db)
    with db.read_session() as session:
        ti = _task_instance(session, dag_id, task_id, run_id, map_index)
        number = try_number if try_number is not None else ti.try_number
        if number < 1:
            raise NotFound(
                f"task instance {task_id!r} of DAG run {ti.run_id!r} has not been tried yet (state {ti.state})"
            )
        where = locate(session, state.settings, ti, number)
        masker = stored_secrets_masker(session, Encryptor.from_settings(state.settings))
        ti_id = ti.id
    out = sys.stdout
    offset = 0
    pending = b""
    while True:
        if follow and offset:  # the try's end is read before the log: once it has ended, all is read below
            where = _where(db, state.settings, ti_id, number)
        while True:
            data = read_log(stores, where, offset, CHUNK_BYTES)
            offset += len(data)
            buffered = pending + data
            cut = len(buffered) if where.finished or not follow else buffered.rfind(b"\n") + 1
            pending = buffered[cut:]
            if cut:
                out.write(masker.mask(buffered[:cut].decode("utf-8", "replace")))
                out.flush()
            if len(data) < CHUNK_BYTES:
                break
        if not follow or where.finished:
            if pending:
                out.write(masker.mask(pending.decode("utf-8", "replace")))
            out.flush()
            return
        time.sleep(FOLLOW_POLL_SECONDS)


__all__ = ["logs_cmd"]
