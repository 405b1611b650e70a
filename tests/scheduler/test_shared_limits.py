"""The concurrency limits hold across schedulers: counting and spending them is one critical section (PostgreSQL).

Two sessions stand for two schedulers. The first is inside the section and has spent the last free slots,
not committed yet; the second scheduler's ``queue_ready`` (``start_queued_runs``) must wait for it — without
the section it would count the slots as free and overfill the pool (``max_active_runs``) — and then find
nothing to spend.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from headrace import DAG
from headrace.config import Settings
from headrace.db import locks
from headrace.db.engine import Database
from headrace.db.models import Pool
from headrace.db.transitions import set_run_state, set_ti_state
from headrace.operators import EmptyOperator
from headrace.scheduler.readiness import Queuer
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import DagRunState
from headrace.states import TaskInstanceState as TI
from tests.waiting import wait_until

from .conftest import NOW, FakeExecutor, move_ti, runs, store_dags, tis

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _waits_on_the_section(db: Database) -> bool:
    with db.engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
        ).scalar()
    return bool(waiting)


def test_queue_ready_waits_for_another_scheduler_spending_the_pool(settings: Settings, db: Database) -> None:
    with DAG("pooled", schedule=None) as dag:
        for n in range(4):
            EmptyOperator(task_id=f"p{n}", pool="two")
    store_dags(settings, db, dag)
    with db.session() as session:
        session.add(Pool(name="two", slots=2))
        trigger_dag(session, "pooled", now=NOW)
    with db.session() as session:
        assert start_queued_runs(session, NOW) == 1
    found = tis(db)
    for ti in found.values():
        move_ti(db, ti.id, TI.SCHEDULED)
    result: list[int] = []
    second = threading.Thread(target=lambda: result.append(Queuer(8).queue_ready(db, FakeExecutor(db), NOW)))
    with db.session() as first:  # the first scheduler: in the section, the pool's 2 slots spent, not committed
        locks.hold(first, locks.Section.QUEUE_TIS)
        for task_id in ("p0", "p1"):
            assert set_ti_state(first, found[task_id].id, TI.SCHEDULED, TI.QUEUED, try_number=1)
        first.flush()
        second.start()
        wait_until(lambda: _waits_on_the_section(db), 20, "the second scheduler to wait for the section")
    second.join(timeout=30)
    assert not second.is_alive()
    assert result == [0]  # the pool was full once the first committed
    assert sorted(t for t, ti in tis(db).items() if ti.state == TI.QUEUED.value) == ["p0", "p1"]


def test_start_queued_runs_waits_for_another_scheduler_starting_a_run(settings: Settings, db: Database) -> None:
    with DAG("serial", schedule=None, max_active_runs=1) as dag:
        EmptyOperator(task_id="t")
    store_dags(settings, db, dag)
    with db.session() as session:
        for seconds in (0, 1):
            trigger_dag(session, "serial", now=NOW.replace(second=seconds))
    older, newer = runs(db)
    result: list[int] = []
    second = threading.Thread(target=lambda: result.append(_start(db)))
    with db.session() as first:  # the first scheduler: in the section, started the older run, not committed
        locks.hold(first, locks.Section.START_RUNS)
        assert set_run_state(first, older.id, DagRunState.QUEUED, DagRunState.RUNNING, start_date=NOW)
        first.flush()
        second.start()
        wait_until(lambda: _waits_on_the_section(db), 20, "the second scheduler to wait for the section")
    second.join(timeout=30)
    assert not second.is_alive()
    assert result == [0]  # max_active_runs=1 was reached once the first committed
    assert [r.state for r in runs(db)] == ["running", "queued"]


def _start(db: Database) -> int:
    with db.session() as session:
        return start_queued_runs(session, NOW)
