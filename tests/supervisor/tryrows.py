"""Test helpers: DAG files in tmp_path, DB rows for a queued try, running supervisors.

Rows are created directly (no scheduler): a DagVersion with the real
serialized DAG, a running DagRun, one TaskInstance per task (state none) and
the wanted one ``queued`` with the given try_number.
"""

from __future__ import annotations

import os
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from headrace.config import Settings
from headrace.dagfiles.loader import load_dags
from headrace.dagfiles.serialization import dag_hash, serialize_dag
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersion, TaskInstance, TaskTry, XCom
from headrace.supervisor.request import TryRequest
from headrace.supervisor.sql_store import SqlTryStore
from headrace.supervisor.supervise import supervise

HEADER = """
from datetime import datetime, timedelta
import os, sys, time
from headrace import DAG, task, FailTask, RetryTask, SkipTask
from headrace.operators import BashOperator, PythonOperator
"""


def write_dag(folder: Path, body: str, name: str = "dag_under_test.py") -> Path:
    """Write a DAG file (``HEADER`` + dedented ``body``) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def create_run(db: Database, dag_file: Path, dag_id: str, run_id: str = "manual__1") -> int:
    """Insert DagVersion, DagRun and one TaskInstance (state none) per task; return the dag_run pk."""
    dag = next(d for d in load_dags(dag_file) if d.dag_id == dag_id)
    serialized = serialize_dag(dag)
    now = datetime.now(UTC)
    with db.session() as session:
        version = session.scalars(
            select(DagVersion).where(DagVersion.dag_id == dag_id, DagVersion.version_hash == dag_hash(serialized))
        ).one_or_none()
        if version is None:
            version = DagVersion(
                dag_id=dag_id, version_hash=dag_hash(serialized), serialized=serialized, created_at=now
            )
            session.add(version)
            session.flush()
        run = DagRun(
            dag_id=dag_id,
            run_id=run_id,
            run_type="manual",
            logical_date=now,
            data_interval_start=now,
            data_interval_end=now,
            state="running",
            conf={},
            dag_version_id=version.id,
            queued_at=now,
            start_date=now,
        )
        session.add(run)
        session.flush()
        for task in dag.tasks:
            session.add(
                TaskInstance(
                    dag_run_id=run.id,
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=task.task_id,
                    state="none",
                    try_number=0,
                    max_tries=task.retries,
                    priority_weight=task.priority_weight,
                    pool=task.pool,
                    queue=task.queue,
                )
            )
        return run.id


def queue_try(db: Database, dag_run_pk: int, task_id: str, dag_file: Path) -> TryRequest:
    """Move the TI to ``queued`` with ``try_number + 1`` (as the scheduler does); return its TryRequest."""
    with db.session() as session:
        ti = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_run_id == dag_run_pk, TaskInstance.task_id == task_id)
        ).one()
        ti.state = "queued"
        ti.try_number += 1
        ti.queued_at = datetime.now(UTC)
        return TryRequest(
            ti_id=ti.id,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=task_id,
            try_number=ti.try_number,
            fileloc=str(dag_file),
            queue=ti.queue,
            priority_weight=ti.priority_weight,
        )


def make_try(db: Database, dag_file: Path, dag_id: str, task_id: str) -> TryRequest:
    """A fresh run of ``dag_id`` with ``task_id`` queued for try 1."""
    return queue_try(db, create_run(db, dag_file, dag_id), task_id, dag_file)


def fork_supervisor(settings: Settings, request: TryRequest) -> int:
    """Start ``supervise`` in a forked child (as the fork server does); return its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            db = Database.from_settings(settings, role="supervisor", single_connection=True)
            code = supervise(settings, SqlTryStore(settings, db), request)
        finally:
            os._exit(code)
    return pid


def wait_exit(pid: int, timeout: float = 30.0) -> int:
    """Wait for child ``pid`` (at most ``timeout`` s); return its exit code."""
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"supervisor {pid} did not finish within {timeout} s")
        time.sleep(0.01)


def run_supervisor(settings: Settings, request: TryRequest, timeout: float = 30.0) -> int:
    """Run ``supervise`` in a forked child to the end; return its exit code."""
    return wait_exit(fork_supervisor(settings, request), timeout)


def ti_row(db: Database, ti_id: int) -> TaskInstance:
    with db.session() as session:
        ti = session.get(TaskInstance, ti_id)
        assert ti is not None
        return ti


def try_row(db: Database, ti_id: int, try_number: int) -> TaskTry | None:
    with db.session() as session:
        return session.scalars(
            select(TaskTry).where(TaskTry.task_instance_id == ti_id, TaskTry.try_number == try_number)
        ).one_or_none()


def xcom_value(db: Database, dag_run_pk: int, task_id: str, key: str = "return_value") -> str | None:
    with db.session() as session:
        return session.scalars(
            select(XCom.value).where(XCom.dag_run_id == dag_run_pk, XCom.task_id == task_id, XCom.key == key)
        ).one_or_none()


def requeue(db: Database, request: TryRequest) -> TryRequest:
    """up_for_retry → queued with the next try_number (what the scheduler does, in one step)."""
    with db.session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.id == request.ti_id)
            .values(state="queued", try_number=TaskInstance.try_number + 1)
        )
    return TryRequest(**{**request.__dict__, "try_number": request.try_number + 1})
