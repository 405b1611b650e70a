"""A DAG file edited while a run is under way: the run follows the new version (Airflow 3's ``verify_integrity``
for the DAG folder), through the real DAG processor, scheduler loop and local executor on SQLite and PostgreSQL.

A first task waits for a gate file; while it waits the DAG file is rewritten. The run must then use the new
graph: a literal ``expand`` of another length loses or gains indices, a task gone from the DAG is ``removed``, a
new task runs. A downstream task checks the values it receives inside its task.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, TaskInstance, TaskTry
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

DAG = """
import time
from datetime import datetime
from pathlib import Path

from headrace import DAG, task

HERE = Path(__file__).parent


@task
def wait():
    while not (HERE / "gate").exists():
        time.sleep(0.05)


@task
def square(x):
    while x == 99 and not (HERE / "never").exists():  # index kept running until it is removed
        time.sleep(0.05)
    return x * x


@task
def collect(values):
    assert list(values) == EXPECTED, list(values)


@task
def extra():
    return "ran"


with DAG("vi", schedule=None, start_date=datetime(2026, 1, 1)):
    w = wait()
    squares = square.expand(x=ITEMS)
    w >> squares
    collect(squares)
    TASKS
"""


def _dag(items: list[int], expected: list[int], tasks: str) -> str:
    return DAG.replace("ITEMS", repr(items)).replace("EXPECTED", repr(expected)).replace("TASKS", tasks)


def _states(db: Database) -> dict[tuple[str, int], str]:
    with db.read_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)).all()
    return {(t, i): s for t, i, s in rows}


def _run_state(db: Database) -> str | None:
    with db.read_session() as session:
        return session.scalar(select(DagRun.state))


def _run_on_current_version(db: Database) -> bool:
    with db.read_session() as session:
        run = session.scalars(select(DagRun)).one()
        version = queries.current_version(session, session.get_one(DagModel, "vi"))
        return version is not None and run.dag_version_id == version.id


def _start(settings: Settings, db: Database, body: str) -> DagProcessor:
    write_dag(settings, "vi.py", body)
    processor = DagProcessor(settings, db)
    assert processor.refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        trigger_dag(session, "vi", now=datetime.now(UTC))
    return processor


def _until(settings: Settings, db: Database, processor: DagProcessor, done: Callable[[], bool]) -> None:
    assert run_scheduler_until(settings, db, done, processor=processor, timeout=120)


def _ended(db: Database) -> Callable[[], bool]:
    return lambda: _run_state(db) in ("success", "failed")


def test_run_follows_a_shorter_literal_and_the_tasks_added_removed_and_mapped(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    processor = _start(
        fast,
        db,
        _dag(
            [1, 2, 3], [1, 4, 9], 'w >> extra.override(task_id="old")()\n    w >> square.override(task_id="later")(5)'
        ),
    )
    try:
        _until(fast, db, processor, lambda: _states(db).get(("wait", -1)) == "running")
        assert _states(db)[("square", 2)] == "none"
        now_mapped = 'w >> square.override(task_id="later").expand(x=[5, 6])'
        write_dag(fast, "vi.py", _dag([1, 2], [1, 4], f'w >> extra.override(task_id="added")()\n    {now_mapped}'))

        def moved_then_open_gate() -> bool:
            if _run_on_current_version(db):
                (fast.dags_folder / "gate").touch()
            return _run_state(db) in ("success", "failed")

        _until(fast, db, processor, moved_then_open_gate)
        assert _states(db) == {
            ("wait", -1): "success",
            ("square", 0): "success",
            ("square", 1): "success",
            ("square", 2): "removed",
            ("collect", -1): "success",  # it asserted it read [1, 4]
            ("old", -1): "removed",
            ("added", -1): "success",
            ("later", -1): "removed",  # it was not mapped: its literal's indices replace it
            ("later", 0): "success",
            ("later", 1): "success",
        }
        assert _run_state(db) == "success"
    finally:
        processor.close()


def test_run_follows_a_longer_literal_and_a_restored_task(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    processor = _start(fast, db, _dag([1, 2], [1, 4, 9, 16], 'w >> extra.override(task_id="back")()'))
    try:
        _until(fast, db, processor, lambda: _states(db).get(("wait", -1)) == "running")
        write_dag(fast, "vi.py", _dag([1, 2], [1, 4, 9, 16], ""))  # "back" leaves the DAG: removed
        _until(fast, db, processor, lambda: _states(db).get(("back", -1)) == "removed")
        write_dag(fast, "vi.py", _dag([1, 2, 3, 4], [1, 4, 9, 16], 'w >> extra.override(task_id="back")()'))

        def grown_then_open_gate() -> bool:
            if ("square", 3) in _states(db):
                (fast.dags_folder / "gate").touch()
            return _run_state(db) in ("success", "failed")

        _until(fast, db, processor, grown_then_open_gate)
        states = _states(db)
        assert {i: states[("square", i)] for i in range(4)} == dict.fromkeys(range(4), "success")
        assert states[("back", -1)] == "success"  # restored to none when it came back, then ran
        assert states[("collect", -1)] == "success"  # it read [1, 4, 9, 16]
        assert _run_state(db) == "success"
    finally:
        processor.close()


@pytest.mark.parametrize("how", ["new_version", "cleared"])
def test_running_index_past_the_new_length_is_removed_and_not_counted(
    settings: Settings, db: Database, how: str
) -> None:
    """Index 2 runs (until stopped) when the length shrinks to 2: it ends ``removed``, its try is stopped, and
    the downstream task runs on indices 0 and 1 only. Through a new DAG version, or a clear of index 0 and
    of the upstream that now pushes two items."""
    fast = settings.with_overrides(FAST)
    (fast.dags_folder / "gate").touch()
    if how == "new_version":
        processor = _start(fast, db, _dag([1, 2, 99], [1, 4], ""))
    else:
        body = _dag([1, 2, 99], [1, 4], "").replace(
            "squares = square.expand(x=[1, 2, 99])",
            "items = numbers()\n    w >> items\n    squares = square.expand(x=items)",
        )
        body = body.replace(
            "@task\ndef collect",
            '@task\ndef numbers():\n    return [1, 2, 99] if not (HERE / "short").exists() else [1, 2]\n\n\n@task\ndef collect',
        )
        processor = _start(fast, db, body)
    try:

        def index_2_running() -> bool:
            states = _states(db)
            return states.get(("square", 2)) == "running" and states.get(("square", 1)) == "success"

        _until(fast, db, processor, index_2_running)
        if how == "new_version":
            write_dag(fast, "vi.py", _dag([1, 2], [1, 4], ""))
        else:
            from headrace.scheduler.user_actions import clear_task_instances

            (fast.dags_folder / "short").touch()
            with db.session() as session:
                run = session.scalars(select(DagRun)).one()
                result = clear_task_instances(
                    session, run, ["numbers", "square"], map_indexes={"square": [0]}, now=datetime.now(UTC)
                )
                assert len(result.cleared) == 2

        def index_2_try(session_db: Database = db) -> list[tuple[str, str | None]]:
            with session_db.read_session() as session:
                rows = session.execute(
                    select(TaskTry.state, TaskTry.end_reason).where(TaskTry.task_id == "square", TaskTry.map_index == 2)
                ).all()
            return [(r[0], r[1]) for r in rows]

        # The run can end before the stopped try's supervisor has written its try row: wait for both.
        _until(fast, db, processor, lambda: _ended(db)() and all(s != "running" for s, _ in index_2_try()))
        states = _states(db)
        assert {i: states[("square", i)] for i in range(3)} == {0: "success", 1: "success", 2: "removed"}
        assert states[("collect", -1)] == "success"  # it asserted it read [1, 4]
        assert _run_state(db) == "success"
        assert index_2_try() == [("removed", "externally_set")]
    finally:
        processor.close()
