"""The queue step holds mapped tasks to ``max_active_tis_per_dagrun`` and ``max_active_tis_per_dag`` (Airflow's
task arguments), counting their queued and running indices; and the examine step expands and decides them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from headrace import DAG, task
from headrace.config import Settings
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.readiness import examine_runs, queue_ready
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI

from .conftest import NOW, FakeExecutor, move_ti, store_dags


@task
def work(x: int) -> int:
    return x


def limited_dag(**limits: int) -> DAG:
    with DAG("limited") as dag:
        work.override(**limits).expand(x=[1, 2, 3, 4])
    return dag


def start_runs(settings: Settings, db: Database, dag: DAG, count: int) -> None:
    store_dags(settings, db, dag)
    with db.session() as session:
        for i in range(count):
            trigger_dag(session, dag.dag_id, now=NOW + timedelta(seconds=i))
        start_queued_runs(session, NOW)
        examine_runs(session, NOW, cache=DagCache())


def by_state(db: Database) -> dict[str, int]:
    with db.session() as session:
        states = session.scalars(select(TaskInstance.state))
        out: dict[str, int] = {}
        for s in states:
            out[s] = out.get(s, 0) + 1
        return out


def test_max_active_tis_per_dagrun_holds_each_runs_indices(settings: Settings, db: Database) -> None:
    start_runs(settings, db, limited_dag(max_active_tis_per_dagrun=2), count=2)
    executor = FakeExecutor(db)
    assert queue_ready(db, executor, NOW, parallelism=32) == 4  # two indices of each run
    assert sorted((r.run_id[-14:], r.map_index) for r in executor.requests) == [
        ("00:30:00+00:00", 0),
        ("00:30:00+00:00", 1),
        ("00:30:01+00:00", 0),
        ("00:30:01+00:00", 1),
    ]
    assert queue_ready(db, executor, NOW, parallelism=32) == 0  # still two active in each run
    move_ti(db, executor.requests[0].ti_id, TI.SUCCESS)
    assert queue_ready(db, executor, NOW, parallelism=32) == 1
    assert executor.requests[-1].run_id == executor.requests[0].run_id
    assert by_state(db) == {"queued": 4, "success": 1, "scheduled": 3}


def test_max_active_tis_per_dag_holds_the_task_over_all_runs(settings: Settings, db: Database) -> None:
    start_runs(settings, db, limited_dag(max_active_tis_per_dag=3), count=2)
    executor = FakeExecutor(db)
    assert queue_ready(db, executor, NOW, parallelism=32) == 3
    assert queue_ready(db, executor, NOW, parallelism=32) == 0
    move_ti(db, executor.requests[0].ti_id, TI.RUNNING)
    assert queue_ready(db, executor, NOW, parallelism=32) == 0  # running counts too
    move_ti(db, executor.requests[0].ti_id, TI.FAILED)
    assert queue_ready(db, executor, NOW, parallelism=32) == 1
    assert by_state(db) == {"queued": 3, "failed": 1, "scheduled": 4}


def test_without_limits_every_index_queues(settings: Settings, db: Database) -> None:
    start_runs(settings, db, limited_dag(), count=2)
    assert queue_ready(db, FakeExecutor(db), NOW, parallelism=32) == 8


def test_queue_order_over_runs_reads_only_the_first_of_each_run(settings: Settings, db: Database) -> None:
    """Airflow's order (priority_weight descending, then the run's logical date, then map index) holds over
    several runs when the scheduler reads only the first ``limit`` of each run (PostgreSQL) as when it reads
    them all (SQLite); a run created later with an earlier logical date comes first."""
    with DAG("ordered") as dag:
        work.override(priority_weight=1, weight_rule="absolute").expand(x=list(range(10)))
        EmptyOperator(task_id="high", priority_weight=5, weight_rule="absolute")
    store_dags(settings, db, dag)
    with db.session() as session:
        for run_id, logical_date in (
            ("late", NOW),
            ("early", NOW - timedelta(days=1)),
            ("middle", NOW - timedelta(hours=1)),
        ):
            trigger_dag(session, dag.dag_id, run_id=run_id, logical_date=logical_date, now=NOW)
        start_queued_runs(session, NOW)
        examine_runs(session, NOW, cache=DagCache())

    def first(limit: int) -> list[tuple[str, str, int]]:
        with db.session() as session:
            return [(ti.run_id, ti.task_id, ti.map_index) for ti in queries.scheduled_tis(session, limit=limit)]

    highs = [("early", "high", -1), ("middle", "high", -1), ("late", "high", -1)]
    assert first(4) == [*highs, ("early", "work", 0)]
    assert first(15) == [
        *highs,
        *(("early", "work", i) for i in range(10)),
        ("middle", "work", 0),
        ("middle", "work", 1),
    ]
    assert len(first(100)) == 33
