"""Rows for doctor tests: a DAG (real serialized form), its runs, task instances and tries with chosen times."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import select

from headrace import DAG
from headrace.dagfiles.serialization import dag_hash, serialize_dag
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, Lease, SchedulerJob, TaskInstance, TaskTry
from headrace.operators import EmptyOperator
from headrace.supervisor.identity import hostname

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""The doctor's ``now`` in these tests."""
MiB = 1 << 20


def add_dag(db: Database, dag_id: str, limits: dict[str, int | None]) -> None:
    """A DAG ``dag_id`` with one EmptyOperator per key of ``limits`` (its memory_limit), as the processor stores it."""
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        for task_id, limit in limits.items():
            EmptyOperator(task_id=task_id, memory_limit=limit)
    serialized = serialize_dag(dag)
    version_hash = dag_hash(serialized)
    with db.session() as session:
        session.add(DagVersion(dag_id=dag_id, version_hash=version_hash, serialized=serialized, created_at=NOW))
        session.add(
            DagModel(
                dag_id=dag_id,
                fileloc=f"/dags/{dag_id}.py",
                max_active_runs=16,
                max_active_tasks=16,
                version_hash=version_hash,
                last_parsed_at=NOW,
            )
        )


class Runs:
    """Creates task instances and tries of one DAG: ``add_try`` makes a new DAG run per call unless told otherwise."""

    def __init__(self, db: Database, dag_id: str) -> None:
        self.db = db
        self.dag_id = dag_id
        self.n = 0
        with db.session() as session:
            version = session.scalars(select(DagVersion).where(DagVersion.dag_id == dag_id)).first()
            if version is None:
                version = DagVersion(
                    dag_id=dag_id, version_hash="h-" + dag_id, serialized={"tasks": {}}, created_at=NOW
                )
                session.add(version)
                session.flush()
            self.version_id = version.id

    def add_try(
        self,
        task_id: str,
        start: datetime,
        end: datetime | None,
        *,
        state: str = "success",
        pool: str = "default_pool",
        pool_slots: int = 1,
        peak: int | None = None,
        end_reason: str | None = None,
        queued_at: datetime | None = None,
        host: str | None = None,
        supervisor: tuple[int, float] = (1, 0.0),
        process: tuple[int | None, float | None] = (None, None),
        heartbeat_at: datetime | None = None,
    ) -> int:
        """Insert a DAG run + task instance (state from the try) + try 1; return the task instance id."""
        self.n += 1
        run_id = f"manual__{self.n}"
        with self.db.session() as session:
            run = DagRun(
                dag_id=self.dag_id,
                run_id=run_id,
                run_type="manual",
                logical_date=start,
                state="running",
                conf={},
                dag_version_id=self.version_id,
                queued_at=start,
                start_date=start,
            )
            session.add(run)
            session.flush()
            ti = TaskInstance(
                dag_run_id=run.id,
                dag_id=self.dag_id,
                run_id=run_id,
                task_id=task_id,
                state=state,
                try_number=1,
                pool=pool,
                pool_slots=pool_slots,
                queued_at=queued_at or start,
                start_date=start,
                end_date=end,
            )
            session.add(ti)
            session.flush()
            session.add(
                TaskTry(
                    task_instance_id=ti.id,
                    dag_id=self.dag_id,
                    run_id=run_id,
                    task_id=task_id,
                    try_number=1,
                    state=state,
                    hostname=host or hostname(),
                    supervisor_pid=supervisor[0],
                    supervisor_start_time=supervisor[1],
                    pid=process[0],
                    process_start_time=process[1],
                    start_date=start,
                    end_date=end,
                    heartbeat_at=heartbeat_at or end or start,
                    peak_rss_bytes=peak,
                    end_reason=end_reason,
                    log_path="/dev/null",
                )
            )
            return int(ti.id)


def at(minutes: float) -> datetime:
    """``NOW`` minus ``minutes``."""
    return NOW - timedelta(minutes=minutes)


def sleeper(seconds: int = 60, *extra: str) -> subprocess.Popen[bytes]:
    """A real child process that sleeps (end it with ``stop``)."""
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})", *extra])


def stop(proc: subprocess.Popen[Any]) -> None:
    """Kill and reap a child started by a test."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def create_time(pid: int) -> float:
    """psutil's creation time of live process ``pid`` (s since the epoch)."""
    return psutil.Process(pid).create_time()


def add_scheduler_job(db: Database, now: datetime, heartbeat_age: float) -> int:
    """This test process as a live scheduler: a ``scheduler_job`` row (last heartbeat ``heartbeat_age`` s
    before ``now``) holding the ``scheduler`` lease for 30 s more; return the job id."""
    me = psutil.Process()
    with db.session() as session:
        job = SchedulerJob(
            hostname=hostname(),
            pid=me.pid,
            process_start_time=me.create_time(),
            started_at=now,
            heartbeat_at=now - timedelta(seconds=heartbeat_age),
        )
        session.add(job)
        session.flush()
        session.add(Lease(name="scheduler", holder_job_id=job.id, expires_at=now + timedelta(seconds=30)))
        return int(job.id)
