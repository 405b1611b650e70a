"""DagProcessor's non-blocking pass: ``start`` forks, ``collect`` stores what finished and never waits."""

from __future__ import annotations

import os
import select
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select as sql_select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor, ProcessorStats
from headrace.db.engine import Database
from headrace.db.models import DagFile, DagModel, ImportError_

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

GOOD = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("{dag_id}", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=False):
    EmptyOperator(task_id="a")
"""

SLOW = "import headrace, time  # a DAG file (Airflow's safe mode)\ntime.sleep({seconds})\n"


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return os.path.realpath(path)


def wait_for_children(processor: DagProcessor) -> None:
    """Sleep until a child's pipe turns readable or the next child is overdue (what the scheduler's wait does)."""
    deadline = processor.next_deadline()
    select.select(processor.fds(), [], [], 0.0 if deadline is None else max(0.0, deadline - time.monotonic()))


def collect_until_done(processor: DagProcessor) -> ProcessorStats:
    while (stats := processor.collect(NOW)) is None:
        wait_for_children(processor)
    return stats


def dag_ids(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(sql_select(DagModel.dag_id)))


def errors(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {e.fileloc: e.message for e in session.scalars(sql_select(ImportError_))}


def test_a_hanging_file_does_not_hold_back_the_others(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides({"core": {"dagbag_import_timeout": 2}})
    write(settings.dags_folder, "etl.py", GOOD.format(dag_id="etl"))
    slow = write(settings.dags_folder, "slow.py", SLOW.format(seconds=5))
    processor = DagProcessor(settings, db)
    assert processor.start(NOW) == 2
    assert processor.busy and processor.fds() and processor.next_deadline() is not None
    assert processor.collect(NOW) is None  # the slow child sleeps: nothing to wait for here
    assert processor.start(NOW) == 0  # a pass is in progress
    while "etl" not in dag_ids(db):  # stored as soon as its child finished...
        assert processor.collect(NOW) is None
        wait_for_children(processor)
    assert processor.busy and errors(db) == {}  # ...while the slow one still runs
    stats = collect_until_done(processor)
    assert (stats.files_seen, stats.files_parsed, stats.dags, stats.errors) == (2, 2, 1, 1)
    assert sorted((Path(f).name, ok) for f, _, ok in stats.parsed) == [("etl.py", True), ("slow.py", False)]
    assert errors(db) == {slow: f"timed out after 2.0 s importing {slow}"}
    assert not processor.busy and processor.fds() == [] and processor.next_deadline() is None
    assert processor.collect(NOW) is None  # no pass in progress


def test_files_beyond_the_concurrency_wait_for_a_slot(settings: Settings, db: Database) -> None:
    for name in ("one", "two", "three"):
        write(settings.dags_folder, f"{name}.py", GOOD.format(dag_id=name))
    processor = DagProcessor(settings, db)
    processor.concurrency = 1
    assert processor.start(NOW) == 3
    assert len(processor.fds()) == 1
    stats = collect_until_done(processor)
    assert (stats.files_parsed, stats.dags, stats.errors) == (3, 3, 0)
    assert dag_ids(db) == {"one", "two", "three"}


def test_a_pass_without_changes_ends_at_the_first_collect(settings: Settings, db: Database) -> None:
    write(settings.dags_folder, "etl.py", GOOD.format(dag_id="etl"))
    processor = DagProcessor(settings, db)
    assert processor.refresh(NOW).files_parsed == 1
    assert processor.start(NOW) == 0
    stats = processor.collect(NOW)
    assert stats is not None and (stats.files_seen, stats.files_parsed) == (1, 0)


def test_deleted_files_are_forgotten_at_start(settings: Settings, db: Database) -> None:
    path = Path(write(settings.dags_folder, "etl.py", GOOD.format(dag_id="etl")))
    processor = DagProcessor(settings, db)
    processor.refresh(NOW)
    path.unlink()
    processor.start(NOW)
    with db.session() as session:
        assert not session.get(DagModel, "etl").is_active  # type: ignore[union-attr]
        assert session.scalars(sql_select(DagFile)).all() == []
    assert processor.collect(NOW) is not None


def test_close_kills_the_pass_and_stores_nothing_more(settings: Settings, db: Database) -> None:
    write(settings.dags_folder, "slow.py", SLOW.format(seconds=30))
    processor = DagProcessor(settings, db)
    assert processor.start(NOW) == 1
    processor.close()
    assert not processor.busy and processor.fds() == []
    assert errors(db) == {}
    assert processor.start(NOW) == 1  # nothing was stored: the next pass parses it again
    processor.close()


def test_a_child_that_closes_its_pipe_and_hangs_is_killed_at_once(settings: Settings, db: Database) -> None:
    path = write(
        settings.dags_folder,
        "daemon.py",
        "import headrace, os, time  # a DAG file (Airflow's safe mode)\nos.closerange(3, 4096)\ntime.sleep(60)\n",
    )
    processor = DagProcessor(settings, db)  # dagbag_import_timeout 30 s: reaping must not wait for it
    stats = processor.refresh(NOW)
    assert stats.errors == 1
    assert errors(db) == {path: f"the process importing {path} died (signal 9) without a result"}
