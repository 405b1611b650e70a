"""dagrun_timeout: a running DAG run older than its timeout fails, its running tries are stopped.

Through a real scheduler, executor and supervisor: tests/integration/test_dagrun_timeout_loop.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from headrace.authoring.dag import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskTry
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.runs import enforce_dagrun_timeouts, start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.identity import hostname

from .conftest import NOW, move_ti, runs, store_dags, tis


def started_run(settings: Settings, db: Database, dag: DAG) -> DagRun:
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, dag.dag_id, now=NOW, run_id=f"manual_{dag.dag_id}")
        assert start_queued_runs(session, NOW) == 1
    [run] = [r for r in runs(db) if r.dag_id == dag.dag_id]
    return run


def enforce(db: Database, now: datetime, cache: DagCache, seen: list[str] | None = None) -> int:
    with db.session() as session:
        return enforce_dagrun_timeouts(
            session, now, cache=cache, on_finished=None if seen is None else lambda r, s: seen.append(s.value)
        )


def test_a_run_past_its_timeout_fails_its_running_tries_and_skips_the_rest(settings: Settings, db: Database) -> None:
    with DAG("slow", dagrun_timeout=60) as dag:
        EmptyOperator(task_id="done") >> EmptyOperator(task_id="running")
        EmptyOperator(task_id="queued")
        EmptyOperator(task_id="scheduled")
        EmptyOperator(task_id="waiting")
        EmptyOperator(task_id="retry")
    run = started_run(settings, db, dag)
    with DAG("patient") as other:  # no dagrun_timeout: never timed out
        EmptyOperator(task_id="running")
    other_run = started_run(settings, db, other)
    ids = {t: ti.id for t, ti in tis(db, run.run_id).items()}
    move_ti(db, ids["done"], TI.SUCCESS)
    move_ti(db, ids["queued"], TI.QUEUED)
    move_ti(db, ids["scheduled"], TI.SCHEDULED)
    move_ti(db, ids["retry"], TI.UP_FOR_RETRY, next_retry_at=NOW + timedelta(hours=1))
    for ti_id in (ids["running"], tis(db, other_run.run_id)["running"].id):
        move_ti(db, ti_id, TI.RUNNING)
    with db.session() as session:
        session.add(
            TaskTry(
                task_instance_id=ids["running"],
                dag_id="slow",
                run_id=run.run_id,
                task_id="running",
                try_number=1,
                state="running",
                hostname=hostname(),
                supervisor_pid=1,
                supervisor_start_time=1.0,
                start_date=NOW,
                heartbeat_at=NOW,
                log_path="/dev/null",
            )
        )
    cache = DagCache()
    assert enforce(db, NOW + timedelta(seconds=59), cache) == 0
    seen: list[str] = []
    assert enforce(db, NOW + timedelta(seconds=61), cache, seen) == 1
    assert seen == ["failed"]
    later = NOW + timedelta(seconds=61)
    by_id = {r.run_id: r for r in runs(db)}
    assert by_id[run.run_id].state == "failed" and by_id[run.run_id].end_date == later
    assert by_id[other_run.run_id].state == "running"
    states = {t: (ti.state, ti.end_reason) for t, ti in tis(db, run.run_id).items()}
    assert states == {
        "done": ("success", None),
        "running": ("failed", "dagrun_timeout"),
        "queued": ("skipped", "dagrun_timeout"),
        "scheduled": ("skipped", "dagrun_timeout"),
        "waiting": ("skipped", "dagrun_timeout"),
        "retry": ("skipped", "dagrun_timeout"),
    }
    with db.session() as session:
        tt = session.scalars(select(TaskTry).where(TaskTry.task_id == "running", TaskTry.dag_id == "slow")).one()
        assert (tt.state, tt.end_reason, tt.end_date) == ("failed", "dagrun_timeout", later)
        assert tt.error == f"DAG run {run.run_id} of slow ran longer than its dagrun_timeout of 60 s"
    assert enforce(db, NOW + timedelta(hours=1), cache) == 0  # once
