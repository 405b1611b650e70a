"""User code never stops the scheduler: a DAG whose schedule cannot be serialized, read back or evaluated
is that DAG's import error, and every other DAG keeps being scheduled and run."""

from __future__ import annotations

import logging
import os
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagVersion, ImportError_
from headrace.scheduler.loop import run
from headrace.scheduler.runs import trigger_dag
from headrace.testing import FakeClock

from .conftest import NOW, runs, tis
from .test_loop import InstantExecutor

GOOD = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("good", schedule="@daily", start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""

CUSTOM_TIMETABLE = """
from datetime import datetime
from headrace import DAG
from headrace.authoring.schedules import DagRunInfo, Timetable
from headrace.operators import EmptyOperator


class Workdays(Timetable):  # defined in the DAG file: the scheduler, which never runs DAG files, cannot import it
    def next_dagrun_info(self, *, last_automated_data_interval, restriction):
        return DagRunInfo.exact(restriction.earliest)


with DAG("custom", schedule=Workdays(), start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
"""

SERIALIZE_RAISES = """
from datetime import datetime
from headrace import DAG
from headrace.authoring.schedules import Timetable
from headrace.operators import EmptyOperator


class Broken(Timetable):
    def next_dagrun_info(self, *, last_automated_data_interval, restriction):
        raise RuntimeError("never asked")

    def serialize(self):
        raise RuntimeError("cannot serialize me")


with DAG("unserializable", schedule=Broken(), start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
"""

EVALUATION_RAISES = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("beside_feb30", schedule="@daily", start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")

# croniter accepts February 30th, then cannot find a date for it.
with DAG("feb30", schedule="0 0 30 2 *", start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
"""


def import_errors(db: Database) -> dict[str, list[ImportError_]]:
    with db.session() as session:
        out: dict[str, list[ImportError_]] = {}
        for err in session.scalars(select(ImportError_).order_by(ImportError_.id)):
            out.setdefault(err.fileloc.rsplit("/", 1)[-1], []).append(err)
        return out


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line)


def test_the_scheduler_survives_bad_schedules_and_runs_the_other_dags(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # A DAG stored earlier whose timetable no longer deserializes (another headrace version, a hand edit),
    # with a manual run under way and its next scheduled run due; its file is unchanged since.
    (settings.dags_folder / "stale.py").write_text(textwrap.dedent(GOOD).replace('"good"', '"stale"'))
    processor = DagProcessor(settings, db)
    assert processor.refresh(NOW).dags == 1
    with db.session() as session:
        version = session.scalars(select(DagVersion).where(DagVersion.dag_id == "stale")).one()
        version.serialized = {**version.serialized, "timetable": {"type": "from_the_future", "every": "tuesday"}}
        dag = session.get(DagModel, "stale")
        assert dag is not None
        dag.next_run_after = NOW - timedelta(hours=1)
        trigger_dag(session, "stale", now=NOW - timedelta(minutes=5))

    files = {
        "good.py": GOOD,
        "custom.py": CUSTOM_TIMETABLE,
        "unserializable.py": SERIALIZE_RAISES,
        "feb30.py": EVALUATION_RAISES,
    }
    for name, text in files.items():
        (settings.dags_folder / name).write_text(textwrap.dedent(text))
    stats = processor.refresh(NOW)  # raised "ScheduleError: unknown serialized timetable" before
    assert (stats.files_parsed, stats.dags, stats.errors) == (4, 2, 3)
    caplog.set_level(logging.ERROR, logger="headrace.scheduler.runs")
    try:
        run(settings, db, InstantExecutor(db), clock=FakeClock(NOW), processor=processor, num_loops=10)
    finally:
        processor.close()

    by_dag = {r.dag_id: r for r in runs(db)}
    assert by_dag["good"].run_type == "scheduled" and by_dag["good"].state == "success"
    # Airflow 3's meaning of "@daily" (CronTriggerTimetable): the run fires at 2024-01-04 00:00, its logical date
    assert by_dag["good"].logical_date == datetime(2024, 1, 4, tzinfo=UTC)
    assert by_dag["beside_feb30"].state == "success"  # the file's other DAG is stored and scheduled
    assert by_dag["stale"].run_type == "manual" and by_dag["stale"].state == "success"  # its graph still runs
    assert set(by_dag) == {"good", "beside_feb30", "stale"}
    assert {t: ti.state for t, ti in tis(db, by_dag["good"].run_id).items()} == {"a": "success", "b": "success"}

    errors = import_errors(db)
    [custom] = errors["custom.py"]
    assert custom.lineno == line_of(CUSTOM_TIMETABLE, 'DAG("custom"')
    assert "the timetable class Workdays is defined in a DAG file" in custom.message
    [unserializable] = errors["unserializable.py"]
    assert unserializable.message == "RuntimeError: cannot serialize me"
    [feb30] = errors["feb30.py"]
    assert feb30.lineno == line_of(EVALUATION_RAISES, 'DAG("feb30"')
    assert "schedule '0 0 30 2 *' cannot be evaluated" in feb30.message
    [stale_error] = errors["stale.py"]
    assert "DAG 'stale' cannot be scheduled" in stale_error.message and "from_the_future" in stale_error.message
    assert any("DAG 'stale' cannot be scheduled" in r.getMessage() for r in caplog.records)
    with db.session() as session:
        assert session.get(DagModel, "custom") is None and session.get(DagModel, "feb30") is None
        stale_row = session.get(DagModel, "stale")
        assert stale_row is not None and stale_row.next_run_after is None  # skipped until parsed again


def test_a_dag_that_fails_after_it_was_stored_is_kept_as_it_was(settings: Settings, db: Database) -> None:
    path = settings.dags_folder / "feb30.py"
    path.write_text(textwrap.dedent(EVALUATION_RAISES).replace("0 0 30 2 *", "@daily"))
    processor = DagProcessor(settings, db)
    assert processor.refresh(NOW).errors == 0
    st = path.stat()
    path.write_text(textwrap.dedent(EVALUATION_RAISES))
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))
    stats = processor.refresh(NOW)
    assert (stats.files_parsed, stats.dags, stats.errors) == (1, 1, 1)
    with db.session() as session:
        kept = session.get(DagModel, "feb30")
        assert kept is not None and kept.is_active and kept.schedule == "@daily"
    [err] = import_errors(db)["feb30.py"]
    assert "cannot be evaluated" in err.message
