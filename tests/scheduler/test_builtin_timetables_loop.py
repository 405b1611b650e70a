"""Airflow 3's built-in timetables through the real DAG processor and scheduler loop, on SQLite and PostgreSQL.

The timetables' arithmetic has its own tests (tests/authoring/test_timetables.py); these check that the
scheduler, from the serialized DAG, creates the runs Airflow 3 creates: each run's logical date and data
interval, for a delta, a ``relativedelta`` (added to the previous run's date, as Airflow does), several crons,
a list of events, and a cron in a time zone across the spring DST change. ``scheduler.create_delta_data_intervals``
gives a ``timedelta`` Airflow 2's data-interval meaning.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun

from .test_timetables_loop import run_loop

DAGS = """
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from headrace import DAG
from headrace.operators import EmptyOperator
from headrace.timetables import CronTriggerTimetable, EventsTimetable, MultipleCronTriggerTimetable

PARIS = ZoneInfo("Europe/Paris")

for dag_id, schedule, start, end in [
    ("every_6h", timedelta(hours=6), datetime(2024, 1, 1), datetime(2024, 1, 1, 12)),
    ("monthly", relativedelta(months=1), datetime(2024, 1, 31), None),
    (
        "two_crons",
        MultipleCronTriggerTimetable("0 6 * * *", "30 18 * * *", timezone="UTC"),
        datetime(2024, 1, 1),
        datetime(2024, 1, 2, 6),
    ),
    (
        "events",
        EventsTimetable([datetime(2024, 1, 1, 10), datetime(2024, 1, 3), datetime(2024, 2, 1)]),
        datetime(2024, 1, 1),
        None,
    ),
    ("paris_6am", CronTriggerTimetable("0 6 * * *", timezone=PARIS), datetime(2024, 3, 30, tzinfo=PARIS), None),
]:
    with DAG(dag_id, schedule=schedule, start_date=start, end_date=end, catchup=True):
        EmptyOperator(task_id="a")
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs_by_dag(db: Database) -> dict[str, list[tuple[datetime, datetime, datetime]]]:
    """``{dag_id: [(logical date, data interval start, end), ...]}`` of the scheduled runs, oldest first."""
    found: dict[str, list[tuple[datetime, datetime, datetime]]] = {}
    with db.session() as session:
        for run in session.scalars(
            select(DagRun).where(DagRun.run_type == "scheduled").order_by(DagRun.dag_id, DagRun.logical_date)
        ):
            assert run.state == "success", (run.dag_id, run.run_id, run.state)
            dates = [run.logical_date, run.data_interval_start, run.data_interval_end]
            found.setdefault(run.dag_id, []).append(tuple(d.astimezone(UTC) for d in dates))  # type: ignore[arg-type]
    return found


def fires(*times: datetime) -> list[tuple[datetime, datetime, datetime]]:
    """Trigger-timetable runs: the logical date is the fire time, the data interval empty at it."""
    return [(t, t, t) for t in times]


def test_builtin_timetables_create_airflow_3_s_runs(settings: Settings, db: Database) -> None:
    (settings.dags_folder / "timetables.py").write_text(textwrap.dedent(DAGS))
    # end_date keeps the delta and the crons to three runs each
    run_loop(settings, db, DagProcessor(settings, db), utc(2024, 4, 1, 5))
    runs = runs_by_dag(db)
    assert runs["events"] == fires(utc(2024, 1, 1, 10), utc(2024, 1, 3), utc(2024, 2, 1))
    # 06:00 in Paris is 05:00 UTC before the change (CET) and 04:00 UTC after it (CEST, from Mar 31)
    assert runs["paris_6am"] == fires(utc(2024, 3, 30, 5), utc(2024, 3, 31, 4), utc(2024, 4, 1, 4))
    # a month after Jan 31 is Feb 29, and a month after that Mar 29 (added to the previous date)
    assert runs["monthly"] == fires(utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 29))
    assert runs["two_crons"] == fires(utc(2024, 1, 1, 6), utc(2024, 1, 1, 18, 30), utc(2024, 1, 2, 6))
    assert runs["every_6h"] == fires(utc(2024, 1, 1), utc(2024, 1, 1, 6), utc(2024, 1, 1, 12))


def test_create_delta_data_intervals_gives_a_timedelta_airflow_2_s_meaning(settings: Settings, db: Database) -> None:
    (settings.dags_folder / "delta.py").write_text(
        textwrap.dedent("""
        from datetime import datetime, timedelta
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("every_6h", schedule=timedelta(hours=6), start_date=datetime(2024, 1, 1), catchup=True):
            EmptyOperator(task_id="a")
        """)
    )
    airflow_2 = settings.with_overrides({"scheduler": {"create_delta_data_intervals": True}})
    run_loop(airflow_2, db, DagProcessor(airflow_2, db), utc(2024, 1, 1, 13))
    # each run covers six hours and starts once they are over: logical date = the interval's start
    assert runs_by_dag(db)["every_6h"] == [
        (utc(2024, 1, 1), utc(2024, 1, 1), utc(2024, 1, 1, 6)),
        (utc(2024, 1, 1, 6), utc(2024, 1, 1, 6), utc(2024, 1, 1, 12)),
    ]
