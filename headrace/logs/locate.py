"""Where a try's log is — its local file, its remote object — and reading it from either (API, UI, CLI).

Readers look locally first (the file the supervisor writes: the freshest while the try runs) and then in
``logging.remote_base_log_folder``, so a try's log stays readable after its worker and its disk are gone. A
local file does not hide a fuller remote log: when the try ran on another host (a local file here is a stub,
e.g. a zombie's callback output written by the scheduler) or the remote log is longer than the local file,
the remote log is read.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.config import Settings
from headrace.db.models import TaskInstance, TaskTry
from headrace.exceptions import ConfigError, NotFound, RemoteLogError
from headrace.logs.files import try_log_path
from headrace.logs.remote import log_key, read_log_bytes
from headrace.states import TI_ACTIVE
from headrace.storage.stores import Stores

log = logging.getLogger("headrace.logs")


@dataclass(frozen=True)
class TryLog:
    """Where a try's log is and whether the try has ended."""

    path: Path
    """The local file (which may be gone: then the remote object is read)."""
    finished: bool
    """The try has ended: the log will not grow."""
    key: str = ""
    """The key of the remote object under ``logging.remote_base_log_folder``."""
    elsewhere: bool = False
    """The try ran on another host (``task_try.hostname``): a local file here is not its log, only a stub."""


def locate(session: Session, settings: Settings, ti: TaskInstance, try_number: int) -> TryLog:
    """The log of try ``try_number`` of ``ti``; raises ``NotFound`` for a try that was never queued.

    The path is the try's recorded ``log_path`` when that lies under ``logging.base_log_folder``, else the
    path the supervisor writes to there (never a file outside that folder).

    A try queued but not started yet has no ``task_try`` row: its log is where
    the supervisor will write it, and it is not finished while the task instance is queued/running.
    """
    if try_number > ti.try_number:
        raise NotFound(
            f"task instance {ti.task_id!r} of DAG run {ti.run_id!r} has no try {try_number}"
            f" (it has had {ti.try_number})"
        )
    tt = session.scalars(
        select(TaskTry)
        .where(TaskTry.task_instance_id == ti.id, TaskTry.try_number == try_number)
        .execution_options(populate_existing=True)
    ).first()
    path = try_log_path(settings.base_log_folder, ti.dag_id, ti.run_id, ti.task_id, try_number, ti.map_index)
    key = log_key(ti.dag_id, ti.run_id, ti.task_id, try_number, ti.map_index)
    if tt is not None:
        recorded = Path(tt.log_path) if tt.log_path else path
        where = recorded if inside(recorded, settings.base_log_folder) else path
        elsewhere = bool(tt.hostname) and tt.hostname != socket.gethostname()
        return TryLog(where, tt.end_date is not None, key, elsewhere)
    waiting = try_number == ti.try_number and ti.state in {s.value for s in TI_ACTIVE}
    return TryLog(path, not waiting, key)


def inside(path: Path, folder: str | Path) -> bool:
    """True if ``path``, symlinks and ``..`` resolved, is within ``folder`` (the only place logs are read from).

    A ``task_try.log_path`` elsewhere (a changed or tampered row) is not followed: the reader reads the try's
    log where it belongs, under ``logging.base_log_folder``, instead.
    """
    return path.resolve().is_relative_to(Path(folder).resolve())


def read_log(stores: Stores, where: TryLog, offset: int, max_bytes: int | None) -> bytes:
    """Bytes of the log ``where`` from ``offset`` (at most ``max_bytes``): the local file, else the remote
    object; the remote object also when the try ran on another host or the remote log is longer than the
    local file. A log found nowhere, or an offset past its end, reads as nothing.

    Raises ``RemoteLogError`` when the local file is gone and the remote store cannot be opened or read (with
    a local file, a remote store that fails is logged and the local file read).
    """
    store = None
    local = where.path.exists()
    if stores.logs_url:
        try:
            store = stores.logs()
        except ConfigError as exc:
            if not local:
                raise RemoteLogError(
                    f"the log is not on this host and the remote log store cannot be used: {exc}"
                ) from None
            log.warning("reading %s locally: the remote log store cannot be used: %s", where.path, exc)
    try:
        return read_log_bytes(where.path, store, where.key, offset, max_bytes, prefer_remote=where.elsewhere)
    except Exception as exc:  # noqa: BLE001 - whatever the storage library raises: one error naming the store
        if store is None:
            raise
        raise RemoteLogError(
            f"the log is not on this host and {store.url_of(where.key)} cannot be read: {type(exc).__name__}: {exc}"
        ) from None


__all__ = ["TryLog", "inside", "locate", "read_log"]
