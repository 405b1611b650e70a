"""Parsing beside the scheduler loop: a DAG file that hangs at import never stops the loop."""

from __future__ import annotations

import os
import textwrap
import threading
from collections.abc import Sequence
from datetime import datetime

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagFile, ImportError_
from headrace.scheduler.loop import Scheduler, Step, SystemClock, run
from headrace.scheduler.runs import trigger_dag
from headrace.testing import FakeClock

from .conftest import NOW, FakeExecutor, runs, tis
from .test_loop import InstantExecutor

CHAIN = """
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("chain"):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b") >> EmptyOperator(task_id="c")
"""


class RecordingClock(SystemClock):
    """The real clock, noting what each wait was given and what it returned."""

    def __init__(self) -> None:
        self.waits: list[tuple[list[int], float, list[int]]] = []

    def wait(self, fds: Sequence[int], timeout: float) -> list[int]:
        readable = super().wait(fds, timeout)
        self.waits.append((list(fds), timeout, readable))
        return readable


def scheduler(settings: Settings, db: Database, processor: DagProcessor, clock: SystemClock) -> Scheduler:
    return Scheduler(settings, db, FakeExecutor(db), clock, processor, threading.Event())


def close(s: Scheduler) -> None:
    """What ``started()`` does on the way out, for a scheduler built without it."""
    os.close(s._wake_r)
    os.close(s._wake_w)


def test_a_chain_runs_while_a_dag_file_hangs_at_import(settings: Settings, db: Database) -> None:
    (settings.dags_folder / "chain.py").write_text(textwrap.dedent(CHAIN))
    processor = DagProcessor(settings, db)  # dagbag_import_timeout: 30 s
    assert processor.refresh(NOW).dags == 1
    (settings.dags_folder / "hang.py").write_text(
        "import headrace, time  # a DAG file (Airflow's safe mode)\ntime.sleep(60)\n"
    )
    with db.session() as session:
        trigger_dag(session, "chain", now=NOW)
    try:
        run(settings, db, InstantExecutor(db), clock=FakeClock(NOW), processor=processor, num_loops=8)
        with db.session() as session:  # hang.py's import had not ended (the scheduler's stop killed it) ...
            assert session.get(DagFile, str(settings.dags_folder / "chain.py")) is not None
            assert session.get(DagFile, str(settings.dags_folder / "hang.py")) is None
        assert runs(db)[0].state == "success"  # ... while the chain ran to its end
        assert {t: ti.state for t, ti in tis(db).items()} == {"a": "success", "b": "success", "c": "success"}
    finally:
        processor.close()


def test_the_wait_wakes_when_a_parse_ends(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides({"scheduler": {"loop_interval": 60}})
    (settings.dags_folder / "chain.py").write_text(textwrap.dedent(CHAIN))
    processor = DagProcessor(settings, db)
    clock = RecordingClock()
    s = scheduler(settings, db, processor, clock)
    try:
        assert s.refresh_dags(clock.now()) == 0 and processor.busy  # started, not waited for
        [fd] = processor.fds()
        parsed = 0
        while not parsed:  # the child's JSON, then its end of file, each wake the wait
            s.wait(clock.now())
            parsed = s.refresh_dags(clock.now())
        assert parsed == 1 and not processor.busy and Step.CREATE_RUNS in s.asked
        assert clock.waits and all(fd in fds and readable == [fd] for fds, _, readable in clock.waits)
    finally:
        processor.close()
        close(s)


def test_the_wait_ends_by_the_kill_of_an_overdue_child(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides({"core": {"dagbag_import_timeout": 0.5}, "scheduler": {"loop_interval": 60}})
    hang = settings.dags_folder / "hang.py"
    hang.write_text("import headrace, time  # a DAG file (Airflow's safe mode)\ntime.sleep(60)\n")
    processor = DagProcessor(settings, db)
    clock = RecordingClock()
    s = scheduler(settings, db, processor, clock)
    try:
        assert s.refresh_dags(clock.now()) == 0 and processor.busy
        assert s._timeout(clock.now()) <= 0.5  # the child's time limit, not loop_interval
        parsed = 0
        while not parsed:
            s.wait(clock.now())
            parsed = s.refresh_dags(clock.now())
        with db.session() as session:
            [err] = session.query(ImportError_).all()
        path = os.path.realpath(hang)
        assert err.message == f"timed out after 0.5 s importing {path}"
        assert all(timeout <= 0.5 for _, timeout, _ in clock.waits)
    finally:
        processor.close()
        close(s)


def test_no_parse_is_due_while_a_pass_runs(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides({"scheduler": {"dag_dir_list_interval": 0.1, "loop_interval": 60}})
    (settings.dags_folder / "hang.py").write_text(
        "import headrace, time  # a DAG file (Airflow's safe mode)\ntime.sleep(60)\n"
    )
    processor = DagProcessor(settings, db)  # dagbag_import_timeout: 30 s
    s = scheduler(settings, db, processor, SystemClock())
    try:
        now: datetime = NOW
        s.refresh_dags(now)
        assert processor.busy
        # The next parse is due in 0.1 s, but it waits for this pass: the wait is the child's time limit.
        assert s._timeout(now) > 1
    finally:
        processor.close()
        close(s)
