"""Timetables through the real DAG processor and scheduler loop, on SQLite and PostgreSQL.

The upgrade to Airflow 3's meaning of a cron string keeps every existing run's dates and neither repeats
nor skips a fire time; a custom timetable in a module beside the DAG files is found again by import path;
``scheduler.create_cron_data_intervals`` keeps Airflow 2's meaning for a deployment that wants it.
"""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersion
from headrace.scheduler.loop import run
from headrace.testing import FakeClock

from .test_loop import InstantExecutor

DAILY = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("daily", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=True):
    EmptyOperator(task_id="a")
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def scheduled_runs(db: Database) -> list[DagRun]:
    with db.session() as session:
        return list(session.scalars(select(DagRun).where(DagRun.run_type == "scheduled").order_by(DagRun.logical_date)))


def run_loop(settings: Settings, db: Database, processor: DagProcessor, now: datetime) -> None:
    """Parse the DAG files (all of them: the processor's first pass), then run the loop at ``now``."""
    processor.refresh(now)
    try:
        run(settings, db, InstantExecutor(db), clock=FakeClock(now), processor=processor, num_loops=15)
    finally:
        processor.close()


def test_upgrading_to_trigger_timetables_keeps_runs_and_fires_each_midnight_once(
    settings: Settings, db: Database
) -> None:
    (settings.dags_folder / "daily.py").write_text(textwrap.dedent(DAILY))
    before = settings.with_overrides({"scheduler": {"create_cron_data_intervals": True}})  # Airflow 2's meaning
    run_loop(before, db, DagProcessor(before, db), utc(2024, 1, 4, 0, 30))
    old = [(r.run_id, r.logical_date, r.data_interval_start, r.data_interval_end) for r in scheduled_runs(db)]
    assert [logical for _, logical, _, _ in old] == [utc(2024, 1, d) for d in (1, 2, 3)]

    # The upgrade: the same file, unchanged, under the new default; a restarted processor parses it again.
    run_loop(settings, db, DagProcessor(settings, db), utc(2024, 1, 6, 0, 30))
    runs = scheduled_runs(db)
    assert [(r.run_id, r.logical_date, r.data_interval_start, r.data_interval_end) for r in runs[:3]] == old
    assert [r.logical_date for r in runs[3:]] == [utc(2024, 1, 5), utc(2024, 1, 6)]  # Airflow 3's meaning now
    # Each midnight from Jan 2 to Jan 6 started exactly one run (a data-interval run fires at its end).
    fire_times = [r.data_interval_end for r in runs]
    assert fire_times == [utc(2024, 1, d) for d in (2, 3, 4, 5, 6)]
    assert all(r.state == "success" for r in runs)
    with db.session() as session:
        versions = session.scalars(select(DagVersion).where(DagVersion.dag_id == "daily").order_by(DagVersion.id))
        kinds = [v.serialized["timetable"]["__type"].rsplit(".", 1)[-1] for v in versions]
    assert kinds == ["CronDataIntervalTimetable", "CronTriggerTimetable"]


def test_a_custom_timetable_beside_the_dag_files_is_found_again_by_the_scheduler(
    settings: Settings, db: Database
) -> None:
    module = f"workdays_{uuid.uuid4().hex[:8]}"  # a fresh name: this process keeps what it imported
    (settings.dags_folder / f"{module}.py").write_text(
        textwrap.dedent("""
        from datetime import timedelta

        from headrace.timetables import DagRunInfo, DataInterval, Timetable


        class Workdays(Timetable):
            '''Runs at ``hour``:00 UTC on Monday to Friday (an Airflow-style custom timetable).'''

            def __init__(self, hour: int = 6) -> None:
                self.hour = hour

            @property
            def summary(self) -> str:
                return f"workdays at {self.hour}:00"

            def serialize(self):
                return {"hour": self.hour}

            @classmethod
            def deserialize(cls, data):
                return cls(data["hour"])

            def infer_manual_data_interval(self, *, run_after):
                return DataInterval(run_after, run_after)

            def next_dagrun_info(self, *, last_automated_data_interval, restriction):
                if last_automated_data_interval is None:
                    if restriction.earliest is None:
                        return None
                    day = restriction.earliest.replace(hour=self.hour, minute=0, second=0, microsecond=0)
                    if day < restriction.earliest:
                        day += timedelta(days=1)
                else:
                    day = last_automated_data_interval.end + timedelta(days=1)
                while day.weekday() >= 5:
                    day += timedelta(days=1)
                return DagRunInfo.exact(day)
        """)
    )
    (settings.dags_folder / "workdays_dag.py").write_text(
        textwrap.dedent(f"""
        from datetime import datetime
        from headrace import DAG
        from headrace.operators import EmptyOperator
        from {module} import Workdays

        with DAG("workdays", schedule=Workdays(hour=6), start_date=datetime(2024, 1, 5), catchup=True):
            EmptyOperator(task_id="a")
        """)
    )
    processor = DagProcessor(settings, db)
    stats = processor.refresh(utc(2024, 1, 9, 12))
    assert (stats.dags, stats.errors) == (1, 0)
    run_loop(settings, db, processor, utc(2024, 1, 9, 12))
    runs = scheduled_runs(db)
    # Friday the 5th, then Monday and Tuesday: the weekend is skipped by the author's own rule.
    assert [r.logical_date for r in runs] == [utc(2024, 1, 5, 6), utc(2024, 1, 8, 6), utc(2024, 1, 9, 6)]
    assert all(r.state == "success" for r in runs)
    with db.session() as session:
        [version] = session.scalars(select(DagVersion).where(DagVersion.dag_id == "workdays"))
        assert version.serialized["timetable"] == {"__type": f"{module}.Workdays", "__var": {"hour": 6}}
        assert version.serialized["schedule"] == "workdays at 6:00"
