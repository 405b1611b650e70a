"""Deadlines: a miss is recorded, called back and notified exactly once — repeated checks, restarts, late finishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace import DAG
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.dagfiles.serialization import SerializedDag, serialize_dag
from headrace.db.engine import Database
from headrace.db.models import DagRun, DeadlineMiss, Notification
from headrace.db.transitions import set_run_state
from headrace.exceptions import DagDefinitionError
from headrace.observability.deadlines import check_deadlines
from headrace.observability.notifications import AlertConfig
from headrace.operators import EmptyOperator
from headrace.scheduler.callbacks import DEADLINE_MISSED, CallbackRequest, CallbackRunner
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.loop import run
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.testing import FakeClock
from tests.scheduler.conftest import FakeExecutor, move_ti, tis
from tests.waiting import wait_until

from .conftest import write_dag

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def deadline_dag(settings: Settings, out: Path) -> None:
    write_dag(
        settings,
        "late",
        f"""
        from datetime import timedelta
        from headrace import DAG
        from headrace.operators import EmptyOperator

        def missed(context):
            with open({str(out)!r}, "a") as f:
                f.write(f"{{context['reason']}} {{context['task_id']}} {{context['deadline'].isoformat()}}\\n")

        with DAG("late", deadline=timedelta(minutes=30), on_deadline_miss_callback=missed):
            EmptyOperator(task_id="quick", deadline=timedelta(minutes=10), deadline_reference="run_start",
                          on_deadline_miss_callback=missed)
            EmptyOperator(task_id="relaxed")
    """,
    )


def lines(out: Path) -> list[str]:
    return sorted(out.read_text().splitlines()) if out.exists() else []


def test_deadline_serialized_only_when_set() -> None:
    with DAG("plain") as plain:
        EmptyOperator(task_id="t")
    assert "deadline" not in serialize_dag(plain) and "deadline" not in serialize_dag(plain)["tasks"]["t"]
    with DAG("timed", deadline=3600, deadline_reference="run_start") as timed:
        EmptyOperator(task_id="t", deadline=timedelta(minutes=5))
    sdag = SerializedDag.from_dict(serialize_dag(timed))
    assert sdag.deadline is not None and (sdag.deadline.interval, sdag.deadline.reference) == (3600.0, "run_start")
    assert sdag.tasks["t"].deadline is not None and sdag.tasks["t"].deadline.interval == 300.0
    assert sdag.has_deadlines and not sdag.has_on_deadline_miss_callback
    with pytest.raises(DagDefinitionError, match="deadline_reference"):
        DAG("bad", deadline=1, deadline_reference="tomorrow")


def test_deadline_miss_fires_callback_and_notification_exactly_once(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    out = tmp_path / "missed.txt"
    settings = settings.with_overrides({"alerts": {"webhook_url": "http://127.0.0.1:9/unused"}})
    deadline_dag(settings, out)
    DagProcessor(settings, db).refresh(NOW)
    with db.session() as session:
        old = trigger_dag(session, "late", logical_date=NOW - timedelta(hours=1), run_id="old", now=NOW)
        start_queued_runs(session, NOW - timedelta(minutes=20))
        fresh = trigger_dag(session, "late", logical_date=NOW, run_id="fresh", now=NOW)
        old_pk, fresh_pk = old.id, fresh.id
    alerts = AlertConfig.from_settings(settings)

    def check(now: datetime) -> int:
        """One scheduler's chore, with a fresh cache and callback runner each time (as after a restart)."""
        found = check_deadlines(db, now, get_dag=DagCache().get, alerts=alerts)
        runner = CallbackRunner(timeout=30)
        runner.start(
            [
                CallbackRequest(c.fileloc, c.dag_id, c.run, DEADLINE_MISSED, task_id=c.task_id, deadline=c.deadline)
                for c in found.callbacks
            ]
        )
        runner.reap(wait=True)
        return len(found.misses)

    # "old": its DAG deadline (logical date + 30 min) passed; "quick" had 10 min from the run's start.
    assert check(NOW) == 2
    for _ in range(3):
        assert check(NOW + timedelta(seconds=5)) == 0
    with db.session() as session:
        misses = session.scalars(select(DeadlineMiss).order_by(DeadlineMiss.task_id)).all()
        assert [(m.run_id, m.task_id, m.callback_done) for m in misses] == [("old", "", True), ("old", "quick", True)]
        assert session.scalars(select(Notification.event_key).order_by(Notification.id)).all() == [
            "webhook|deadline_missed|late|old||",
            "webhook|deadline_missed|late|old|quick|",
        ]
    expected = sorted(
        [
            f"deadline_missed None {(NOW - timedelta(minutes=30)).isoformat()}",
            f"deadline_missed quick {(NOW - timedelta(minutes=10)).isoformat()}",
        ]
    )
    assert lines(out) == expected

    # "fresh" finishes its task in time, then the run finishes late: only the DAG-level miss, once.
    with db.session() as session:
        start_queued_runs(session, NOW)
    assert check(NOW + timedelta(minutes=5)) == 0  # started at NOW: "quick" is due at NOW + 10 min
    move_ti(db, tis(db, "fresh")["quick"].id, TI.SUCCESS, end_date=NOW + timedelta(minutes=9))
    with db.session() as session:
        set_run_state(session, fresh_pk, "running", "success", end_date=NOW + timedelta(minutes=31))
    assert check(NOW + timedelta(minutes=40)) == 1
    assert check(NOW + timedelta(minutes=41)) == 0
    with db.session() as session:
        assert session.scalars(select(DeadlineMiss.task_id).where(DeadlineMiss.dag_run_id == fresh_pk)).all() == [""]
        assert session.get(DagRun, old_pk) is not None
    assert len(lines(out)) == 3


def test_scheduler_chore_checks_deadlines_once_across_restarts(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    out = tmp_path / "missed.txt"
    deadline_dag(settings, out)
    DagProcessor(settings, db).refresh(NOW)
    with db.session() as session:
        trigger_dag(session, "late", logical_date=NOW - timedelta(hours=2), run_id="overdue", now=NOW)
    for restart in range(3):  # three scheduler lifetimes on the same DB; the queued run never starts
        run(
            settings.with_overrides({"core": {"max_active_runs_per_dag": 1}}),
            db,
            FakeExecutor(db, slots=0),
            clock=FakeClock(NOW + timedelta(minutes=restart)),
            num_loops=3,
        )
    wait_until(lambda: len(lines(out)) >= 1, 30, "a line from the callback")
    with db.session() as session:
        assert [(m.run_id, m.task_id) for m in session.scalars(select(DeadlineMiss))] == [("overdue", "")]
    assert lines(out) == [f"deadline_missed None {(NOW - timedelta(hours=1, minutes=30)).isoformat()}"]
