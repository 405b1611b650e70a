"""The scheduler loop with a fake clock and an executor that finishes tries at once."""

from __future__ import annotations

import textwrap
import threading
from datetime import timedelta

from sqlalchemy import select

from headrace import DAG
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, Lease, SchedulerJob
from headrace.db.transitions import set_ti_state
from headrace.executors.base import ExecutorEvent
from headrace.operators import EmptyOperator
from headrace.scheduler.loop import run
from headrace.scheduler.runs import trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.request import TryRequest
from headrace.testing import FakeClock

from .conftest import NOW, FakeExecutor, runs, store_dags, tis


class InstantExecutor(FakeExecutor):
    """Claims and finishes each try as soon as it is queued; ``outcomes[task_id]`` lists each try's outcome."""

    def __init__(self, db: Database, outcomes: dict[str, list[TI]] | None = None) -> None:
        super().__init__(db)
        self.outcomes = outcomes or {}

    def open_slots(self) -> int:
        return self.slots

    def queue(self, request: TryRequest) -> None:
        super().queue(request)
        planned = self.outcomes.get(request.task_id) or [TI.SUCCESS]
        outcome = planned.pop(0) if len(planned) > 1 else planned[0]
        with self.db.session() as session:
            assert set_ti_state(session, request.ti_id, TI.QUEUED, TI.RUNNING, expected_try_number=request.try_number)
            extra = {"next_retry_at": NOW} if outcome is TI.UP_FOR_RETRY else {}
            assert set_ti_state(session, request.ti_id, TI.RUNNING, outcome, **extra)
        self.events.append(ExecutorEvent(request.ti_id, request.try_number, "exited", 0))


def test_loop_runs_a_triggered_dag_to_success(settings: Settings, db: Database) -> None:
    with DAG("loop") as dag:
        EmptyOperator(task_id="a") >> [EmptyOperator(task_id="b"), EmptyOperator(task_id="c")]
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, "loop", now=NOW)
    executor = InstantExecutor(db)
    run(settings, db, executor, clock=FakeClock(NOW), num_loops=5)
    [done] = runs(db)
    assert done.state == "success"
    assert [r.task_id for r in executor.requests] == ["a", "b", "c"]
    assert executor.started and executor.terminated
    with db.session() as session:
        assert session.get(Lease, "scheduler") is None  # released on stop
        job = session.scalars(select(SchedulerJob)).one()
        assert job.ended_at is not None


def test_loop_retries_then_fails(settings: Settings, db: Database) -> None:
    with DAG("flaky") as dag:
        EmptyOperator(task_id="t", retries=1)
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, "flaky", now=NOW)
    executor = InstantExecutor(db, {"t": [TI.UP_FOR_RETRY, TI.FAILED]})
    run(settings, db, executor, clock=FakeClock(NOW), num_loops=8)
    assert [r.try_number for r in executor.requests] == [1, 2]
    assert runs(db)[0].state == "failed"


def test_loop_wait_is_shortened_by_a_due_retry(settings: Settings, db: Database) -> None:
    with DAG("wait") as dag:
        EmptyOperator(task_id="t", retries=1)
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, "wait", now=NOW)
    executor = InstantExecutor(db, {"t": [TI.UP_FOR_RETRY, TI.SUCCESS]})
    clock = FakeClock(NOW - timedelta(seconds=0.25))  # the retry is due 0.25 s after the try
    run(settings, db, executor, clock=clock, num_loops=6)
    assert clock.waits and min(clock.waits) <= 0.25 + 1e-6
    assert max(clock.waits) <= settings.get("scheduler", "loop_interval")
    assert len(executor.requests) == 2


def test_loop_parses_and_schedules_a_dag_file(settings: Settings, db: Database) -> None:
    (settings.dags_folder / "hourly.py").write_text(
        textwrap.dedent("""
        from datetime import datetime
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("hourly", schedule="@hourly", start_date=datetime(2024, 1, 1), catchup=False):
            EmptyOperator(task_id="a")
    """)
    )
    executor = InstantExecutor(db)
    stop = threading.Event()

    def until_the_run_ended(_now: object) -> None:  # the parse runs beside the loop, in real time
        if any(r.state == "success" for r in runs(db)):
            stop.set()

    run(
        settings,
        db,
        executor,
        clock=FakeClock(NOW),
        processor=DagProcessor(settings, db),
        stop=stop,
        after_loop=until_the_run_ended,
        num_loops=1000,
    )  # an idle loop moves the fake clock <= loop_interval (1 s)
    [done] = runs(db)
    assert (done.run_id, done.state) == ("scheduled__2024-01-04T00:00:00+00:00", "success")  # the latest fire time
    assert tis(db)["a"].state == "success"


def test_stop_before_start_does_nothing(settings: Settings, db: Database) -> None:
    stop = threading.Event()
    stop.set()
    executor = InstantExecutor(db)
    run(settings, db, executor, clock=FakeClock(NOW), stop=stop)
    assert not executor.started
    with db.session() as session:
        assert session.scalars(select(DagRun)).all() == []
