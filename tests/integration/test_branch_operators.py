"""LatestOnlyOperator, BranchDayOfWeekOperator and BranchDateTimeOperator through the scheduler
(SQLite and PostgreSQL): scheduled catch-up runs, and manual runs at a chosen logical date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, ImportError_, TaskInstance
from headrace.scheduler.runs import trigger_dag

from .helpers import FAST, run_scheduler_until_done, write_dag

LATEST_ONLY = """
from datetime import datetime, timedelta, timezone

from headrace import DAG
from headrace.operators import EmptyOperator, LatestOnlyOperator

START = datetime.fromisoformat("{start}")

with DAG("latest", schedule="@daily", start_date=START, catchup=True):
    latest = LatestOnlyOperator(task_id="latest_only")
    after = EmptyOperator(task_id="after")
    further = EmptyOperator(task_id="further")
    independent = EmptyOperator(task_id="independent")
    latest >> after >> further
"""


def _states_by_run(db: Database, dag_id: str) -> dict[str, dict[str, str]]:
    with db.read_session() as session:
        rows = session.execute(
            select(DagRun.run_id, DagRun.run_type, TaskInstance.task_id, TaskInstance.state)
            .join(TaskInstance, TaskInstance.dag_run_id == DagRun.id)
            .where(DagRun.dag_id == dag_id)
        ).all()
    out: dict[str, dict[str, str]] = {}
    for run_id, run_type, task_id, state in rows:
        out.setdefault(run_id, {"<type>": run_type})[task_id] = state
    return out


def _unpause_all(db: Database) -> None:
    with db.session() as session:
        assert list(session.scalars(select(ImportError_.message))) == []
        for model in session.scalars(select(DagModel)):
            model.is_paused = False


def test_latest_only_skips_downstream_of_every_scheduled_run_but_the_latest(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    write_dag(settings, "latest.py", LATEST_ONLY.format(start=(today - timedelta(days=2)).isoformat()))
    processor = DagProcessor(settings, db)
    processor.refresh(datetime.now(UTC))
    _unpause_all(db)
    with db.session() as session:
        manual = trigger_dag(session, "latest", now=datetime.now(UTC), logical_date=today - timedelta(days=5)).run_id
    run_scheduler_until_done(settings, db, timeout=120)

    runs = _states_by_run(db, "latest")
    scheduled = sorted(r for r, states in runs.items() if states["<type>"] == "scheduled")
    assert len(scheduled) == 3  # catch-up: the day before yesterday, yesterday, today (cron trigger timetable)
    for run_id in scheduled[:-1]:
        assert runs[run_id] == {
            "<type>": "scheduled",
            "latest_only": "success",
            "after": "skipped",
            "further": "skipped",
            "independent": "success",
        }, run_id
    latest_states = {"latest_only": "success", "after": "success", "further": "success", "independent": "success"}
    assert runs[scheduled[-1]] == {"<type>": "scheduled", **latest_states}
    # a manual run always proceeds, even for an old logical date
    assert runs[manual] == {"<type>": "manual", **latest_states}


BRANCHES = """
from datetime import datetime, time

from headrace import DAG
from headrace.operators import BranchDateTimeOperator, BranchDayOfWeekOperator, EmptyOperator, WeekDay

with DAG("branches", schedule=None, start_date=datetime(2024, 1, 1)):
    monday = BranchDayOfWeekOperator(
        task_id="is_monday",
        week_day="Monday",
        use_task_logical_date=True,
        follow_task_ids_if_true="monday",
        follow_task_ids_if_false="other_day",
    )
    monday >> [EmptyOperator(task_id="monday"), EmptyOperator(task_id="other_day")]
    weekend = BranchDayOfWeekOperator(
        task_id="is_weekend",
        week_day={WeekDay.SATURDAY, WeekDay.SUNDAY},
        use_task_logical_date=True,
        follow_task_ids_if_true=["weekend"],
        follow_task_ids_if_false=["workday", "workday_too"],
    )
    weekend >> [EmptyOperator(task_id="weekend"), EmptyOperator(task_id="workday"), EmptyOperator(task_id="workday_too")]
    window = BranchDateTimeOperator(
        task_id="in_window",
        target_lower=datetime(2024, 1, 1, 9),
        target_upper=datetime(2024, 1, 1, 11),
        use_task_logical_date=True,
        follow_task_ids_if_true="inside",
        follow_task_ids_if_false="outside",
    )
    window >> [EmptyOperator(task_id="inside"), EmptyOperator(task_id="outside")]
    night = BranchDateTimeOperator(
        task_id="at_night",
        target_lower=time(22),
        target_upper=time(6),
        use_task_logical_date=True,
        follow_task_ids_if_true="night",
        follow_task_ids_if_false="day",
    )
    night >> [EmptyOperator(task_id="night"), EmptyOperator(task_id="day")]
    now_window = BranchDateTimeOperator(
        task_id="now_after_2000",
        target_lower=datetime(2000, 1, 1),
        target_upper=None,
        follow_task_ids_if_true="modern",
        follow_task_ids_if_false="ancient",
    )
    now_window >> [EmptyOperator(task_id="modern"), EmptyOperator(task_id="ancient")]
"""


def test_day_of_week_and_datetime_branches_follow_the_logical_date(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(settings, "branches.py", BRANCHES)
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    _unpause_all(db)
    with db.session() as session:
        monday_10 = trigger_dag(
            session, "branches", now=datetime.now(UTC), logical_date=datetime(2024, 1, 1, 10, tzinfo=UTC)
        )
        saturday_23 = trigger_dag(
            session, "branches", now=datetime.now(UTC), logical_date=datetime(2024, 1, 6, 23, tzinfo=UTC)
        )
        ids = (monday_10.run_id, saturday_23.run_id)
    run_scheduler_until_done(settings, db, timeout=120)

    runs = _states_by_run(db, "branches")
    chosen = {run_id: sorted(t for t, s in runs[run_id].items() if s == "success") for run_id in ids}
    skipped = {run_id: sorted(t for t, s in runs[run_id].items() if s == "skipped") for run_id in ids}
    branch_tasks = ["at_night", "in_window", "is_monday", "is_weekend", "now_after_2000"]
    assert chosen[ids[0]] == sorted([*branch_tasks, "monday", "workday", "workday_too", "inside", "day", "modern"])
    assert skipped[ids[0]] == ["ancient", "night", "other_day", "outside", "weekend"]
    assert chosen[ids[1]] == sorted([*branch_tasks, "other_day", "weekend", "outside", "night", "modern"])
    assert skipped[ids[1]] == ["ancient", "day", "inside", "monday", "workday", "workday_too"]
