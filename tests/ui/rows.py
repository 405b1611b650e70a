"""Real metadata rows for the UI's tests: a DagModel with its serialized DagVersion, DAG runs, task
instances and their ``task_try`` rows, written through the ORM to the ``db`` fixture's database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance, TaskTry

MIB = 1024 * 1024
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _task(task_id: str, upstream: list[str], downstream: list[str], memory_limit: int | None) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "upstream_task_ids": upstream,
        "downstream_task_ids": downstream,
        "memory_limit": memory_limit,
        "operator": "@task",
    }


def add_dag(db: Database, dag_id: str = "mem", *, hog_limit: int | None = 256 * MIB, version: str = "v1") -> int:
    """A DAG ``hog >> summary`` and ``modest >> summary``; hog and modest limited; return the version pk."""
    serialized = {
        "dag_id": dag_id,
        "tasks": {
            "hog": _task("hog", [], ["summary"], hog_limit),
            "modest": _task("modest", [], ["summary"], 256 * MIB),
            "summary": _task("summary", ["hog", "modest"], [], None),
        },
    }
    with db.session() as s:
        dag = s.get(DagModel, dag_id)
        if dag is None:
            s.add(
                DagModel(
                    dag_id=dag_id,
                    fileloc=f"/dags/{dag_id}.py",
                    is_paused=False,
                    is_active=True,
                    tags=[],
                    max_active_runs=16,
                    max_active_tasks=16,
                    version_hash=version,
                )
            )
        else:
            dag.version_hash = version
        v = DagVersion(dag_id=dag_id, version_hash=version, serialized=serialized, created_at=T0)
        s.add(v)
        s.flush()
        return v.id


def add_run(
    db: Database, version_pk: int, run_id: str, at: datetime, *, dag_id: str = "mem", state: str = "success"
) -> int:
    with db.session() as s:
        run = DagRun(
            dag_id=dag_id,
            run_id=run_id,
            run_type="manual",
            logical_date=at,
            data_interval_start=at,
            data_interval_end=at,
            state=state,
            conf={},
            dag_version_id=version_pk,
            queued_at=at,
            start_date=at,
            end_date=None if state == "running" else at + timedelta(minutes=5),
        )
        s.add(run)
        s.flush()
        return run.id


def add_ti(
    db: Database,
    run_pk: int,
    task_id: str,
    state: str,
    tries: list[dict[str, Any]],
    *,
    queued_at: datetime | None = None,
    dag_id: str = "mem",
) -> None:
    """A task instance with one ``task_try`` row per entry of ``tries`` (start/end offsets in seconds)."""
    with db.session() as s:
        run = s.get(DagRun, run_pk)
        assert run is not None
        ti = TaskInstance(
            dag_run_id=run_pk,
            dag_id=dag_id,
            run_id=run.run_id,
            task_id=task_id,
            state=state,
            try_number=len(tries) if tries or queued_at is None else 1,
            max_tries=2,
            queued_at=queued_at,
        )
        s.add(ti)
        s.flush()
        base = run.start_date or T0
        for n, t in enumerate(tries, start=1):
            s.add(
                TaskTry(
                    task_instance_id=ti.id,
                    dag_id=dag_id,
                    run_id=run.run_id,
                    task_id=task_id,
                    try_number=n,
                    state=t.get("state", "success"),
                    hostname="host-a",
                    supervisor_pid=100 + n,
                    supervisor_start_time=1.0,
                    pid=200 + n,
                    process_start_time=2.0,
                    start_date=base + timedelta(seconds=t["start"]),
                    end_date=None if t.get("end") is None else base + timedelta(seconds=t["end"]),
                    heartbeat_at=base + timedelta(seconds=t["start"]),
                    exit_code=t.get("exit_code"),
                    peak_rss_bytes=t.get("peak"),
                    cpu_seconds=t.get("cpu"),
                    end_reason=t.get("end_reason"),
                    log_path=f"/logs/{task_id}/{n}.log",
                )
            )
