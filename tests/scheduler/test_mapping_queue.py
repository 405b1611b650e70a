"""The queue step holds mapped tasks to ``max_active_tis_per_dagrun`` and ``max_active_tis_per_dag`` (Airflow's
task arguments), counting their queued and running indices; and the examine step expands and decides them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from headrace import DAG, task
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
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
