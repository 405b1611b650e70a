"""Readiness: trigger rules decided in the DB, retries due, and queueing within pools and limits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from headrace import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Pool, TaskInstance
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.readiness import Queuer, examine_runs, queue_ready
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI

from .conftest import NOW, FakeExecutor, move_ti, store_dags, tis

RULES = [
    "all_success",
    "all_failed",
    "all_done",
    "all_skipped",
    "one_success",
    "one_failed",
    "one_done",
    "none_failed",
    "none_failed_min_one_success",
    "none_skipped",
    "always",
]

S, SK, UF, N = "scheduled", "skipped", "upstream_failed", "none"
EXPECTED = {
    # (u1, u2): {rule: state after examine}
    (TI.SUCCESS, TI.FAILED): dict(zip(RULES, [UF, SK, S, SK, S, S, S, UF, UF, S, S])),
    (TI.SUCCESS, TI.SKIPPED): dict(zip(RULES, [SK, SK, S, SK, S, SK, S, S, S, SK, S])),
    (TI.SUCCESS, TI.RUNNING): dict(zip(RULES, [N, SK, N, SK, S, N, S, N, N, N, S])),
    (TI.SKIPPED, TI.SKIPPED): dict(zip(RULES, [SK, SK, S, S, SK, SK, SK, S, SK, SK, S])),
    (TI.FAILED, TI.UPSTREAM_FAILED): dict(zip(RULES, [UF, S, S, SK, UF, S, S, UF, UF, S, S])),
}


def rules_dag() -> DAG:
    with DAG("rules") as dag:
        ups = [EmptyOperator(task_id="u1"), EmptyOperator(task_id="u2")]
        for rule in RULES:
            ups >> EmptyOperator(task_id=rule, trigger_rule=rule)
    return dag


def start_run(settings: Settings, db: Database, dag: DAG) -> str:
    store_dags(settings, db, dag)
    with db.session() as session:
        run = trigger_dag(session, dag.dag_id, now=NOW)
        start_queued_runs(session, NOW)
    return run.run_id


@pytest.mark.parametrize("upstream", list(EXPECTED), ids=lambda u: f"{u[0].value}+{u[1].value}")
def test_trigger_rules(settings: Settings, db: Database, upstream: tuple[TI, TI]) -> None:
    start_run(settings, db, rules_dag())
    before = tis(db)
    move_ti(db, before["u1"].id, upstream[0])
    move_ti(db, before["u2"].id, upstream[1])
    with db.session() as session:
        examine_runs(session, NOW, cache=DagCache())
    after = tis(db)
    assert {rule: after[rule].state for rule in RULES} == EXPECTED[upstream]


def test_cascade_settles_in_one_pass(settings: Settings, db: Database) -> None:
    with DAG("chain") as dag:
        a, b, c, d = (EmptyOperator(task_id=t) for t in "abcd")
        a >> b >> c >> d
        EmptyOperator(task_id="cleanup", trigger_rule="all_done").set_upstream(d)
    start_run(settings, db, dag)
    cache = DagCache()
    with db.session() as session:
        assert examine_runs(session, NOW, cache=cache) == 1  # a scheduled
    move_ti(db, tis(db)["a"].id, TI.FAILED)
    with db.session() as session:
        assert examine_runs(session, NOW, cache=cache) == 4
    states = {t: ti.state for t, ti in tis(db).items()}
    assert states == {"a": "failed", "b": UF, "c": UF, "d": UF, "cleanup": S}


def test_retry_becomes_scheduled_when_due(settings: Settings, db: Database) -> None:
    with DAG("retry") as dag:
        EmptyOperator(task_id="t", retries=1)
    start_run(settings, db, dag)
    move_ti(db, tis(db)["t"].id, TI.UP_FOR_RETRY, next_retry_at=NOW + timedelta(seconds=30))
    cache = DagCache()
    with db.session() as session:
        assert examine_runs(session, NOW, cache=cache) == 0
    with db.session() as session:
        assert examine_runs(session, NOW + timedelta(seconds=30), cache=cache) == 1
    t = tis(db)["t"]
    assert t.state == S and t.next_retry_at is None and t.try_number == 1


def make_wide(settings: Settings, db: Database, n: int, **task_args: object) -> None:
    with DAG("wide", max_active_tasks=task_args.pop("max_active_tasks", None)) as dag:  # type: ignore[arg-type]
        for i in range(n):
            EmptyOperator(task_id=f"t{i}", priority_weight=i, **task_args)  # type: ignore[arg-type]
    start_run(settings, db, dag)
    with db.session() as session:
        examine_runs(session, NOW, cache=DagCache())


def test_queue_ready_in_priority_order_and_commits_first(
    settings: Settings, db: Database, executor: FakeExecutor
) -> None:
    make_wide(settings, db, 5)
    executor.slots = 3
    assert queue_ready(db, executor, NOW, parallelism=10) == 3
    assert [r.task_id for r in executor.requests] == ["t4", "t3", "t2"]
    assert all(r.try_number == 1 for r in executor.requests)
    states = {t: ti.state for t, ti in tis(db).items()}
    assert states == {"t4": "queued", "t3": "queued", "t2": "queued", "t1": S, "t0": S}
    assert tis(db)["t4"].queued_at == NOW
    assert queue_ready(db, executor, NOW, parallelism=10) == 0  # executor full


def test_parallelism_counts_tries_already_active(settings: Settings, db: Database, executor: FakeExecutor) -> None:
    make_wide(settings, db, 5)
    move_ti(db, tis(db)["t0"].id, TI.RUNNING)
    assert queue_ready(db, executor, NOW, parallelism=3) == 2


def test_pool_slots(settings: Settings, db: Database, executor: FakeExecutor) -> None:
    with db.session() as session:
        session.add(Pool(name="small", slots=3))
    make_wide(settings, db, 4, pool="small", pool_slots=2)
    assert queue_ready(db, executor, NOW, parallelism=10) == 1
    with db.session() as session:
        session.get(Pool, "small").slots = 4  # type: ignore[union-attr]
    assert queue_ready(db, executor, NOW, parallelism=10) == 1
    assert len(executor.requests) == 2


def test_unlimited_pool(settings: Settings, db: Database, executor: FakeExecutor) -> None:
    """-1 slots (Airflow's unlimited): the pool holds nothing back, whatever the slots its tasks take."""
    with db.session() as session:
        session.add(Pool(name="open", slots=-1))
    make_wide(settings, db, 4, pool="open", pool_slots=3)
    move_ti(db, tis(db)["t0"].id, TI.RUNNING)  # slots in use do not make it run out either
    assert queue_ready(db, executor, NOW, parallelism=10) == 3
    assert {ti.state for ti in tis(db).values()} == {"queued", "running"}


def test_unknown_pool_stays_scheduled(
    settings: Settings, db: Database, executor: FakeExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    make_wide(settings, db, 2, pool="nope")
    queuer = Queuer(parallelism=10)
    assert queuer.queue_ready(db, executor, NOW) == 0
    assert queuer.queue_ready(db, executor, NOW) == 0
    assert {ti.state for ti in tis(db).values()} == {S}
    assert sum("'nope', which does not exist" in r.message for r in caplog.records) == 1


def test_max_active_tasks(settings: Settings, db: Database, executor: FakeExecutor) -> None:
    make_wide(settings, db, 4, max_active_tasks=2)
    assert queue_ready(db, executor, NOW, parallelism=10) == 2
    assert queue_ready(db, executor, NOW, parallelism=10) == 0
    with db.session() as session:
        queued = session.scalars(select(TaskInstance).where(TaskInstance.state == "queued")).all()
    assert len(queued) == 2


def test_executor_refusal_gives_the_try_back(settings: Settings, db: Database, executor: FakeExecutor) -> None:
    make_wide(settings, db, 1)

    def refuse(_request: object) -> None:
        raise RuntimeError("no room")

    executor.queue = refuse  # type: ignore[method-assign]
    assert queue_ready(db, executor, NOW, parallelism=10) == 0
    t = tis(db)["t0"]
    assert (t.state, t.try_number, t.queued_at) == (S, 0, None)


def test_paused_dag_runs_are_not_examined(settings: Settings, db: Database) -> None:
    start_run(settings, db, rules_dag())
    from headrace.db.models import DagModel

    with db.session() as session:
        session.get(DagModel, "rules").is_paused = True  # type: ignore[union-attr]
    with db.session() as session:
        assert examine_runs(session, NOW, cache=DagCache()) == 0
    _ = datetime
