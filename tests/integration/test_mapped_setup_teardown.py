"""Mapped setup and teardown tasks (Airflow supports both), through the real DAG processor, scheduler loop and
local executor on SQLite and PostgreSQL: a teardown waits until its setups are done and runs when at least one
instance of its (mapped) setup succeeded; a work task needs every setup instance to succeed; a teardown's
failure does not decide the run."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

MAPPED_SETUP = """
from datetime import datetime

from headrace import DAG, setup, task, teardown
from headrace.exceptions import SkipTask


@task(max_active_tis_per_dagrun=1)  # one index at a time, in map index order: 1 fails before 2 skips
def my_setup(val):
    if val == "data2.json":
        raise ValueError("no data 2")
    if val == "data3.json":
        raise SkipTask("no data 3")
    return val


@task
def my_work(val):
    return val


@task
def my_teardown(val):
    return "torn down"


@setup
def other_setup():
    return 1


@task
def other_work():
    return 2


@teardown
def other_teardown():
    return 3


with DAG("mapped_setup", schedule=None, start_date=datetime(2026, 1, 1)):
    s = my_setup.expand(val=["data1.json", "data2.json", "data3.json"])
    o_setup = other_setup()
    o_teardown = other_teardown()
    with o_teardown.as_teardown(setups=o_setup):
        other_work()
    t = my_teardown(s).as_teardown(setups=s)
    with t:
        my_work(s)
    o_setup >> t
"""

MAPPED_TEARDOWN = """
from datetime import datetime

from headrace import DAG, task, teardown


@task
def my_setup():
    return [1, 2, 3]


@task
def my_work(val):
    raise ValueError("this fails")


@task
def my_teardown(val):
    return val * 10


@teardown
def decorated_teardown(val):
    return val


with DAG("mapped_teardown", schedule=None, start_date=datetime(2026, 1, 1)):
    s = my_setup()
    t = my_teardown.expand(val=s).as_teardown(setups=s)
    with t:
        my_work(s)
    decorated = decorated_teardown.expand(val=[7, 8])
    s >> decorated
"""


def _run(settings: Settings, db: Database, name: str, body: str) -> tuple[str | None, dict[str, object]]:
    fast = settings.with_overrides(FAST)
    write_dag(fast, f"{name}.py", body)
    processor = DagProcessor(fast, db)
    assert processor.refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        trigger_dag(session, name, now=datetime.now(UTC))

    def ended() -> bool:
        with db.read_session() as session:
            return session.scalar(select(DagRun.state)) in ("success", "failed")

    try:
        assert run_scheduler_until(fast, db, ended, processor=processor, timeout=120)
    finally:
        processor.close()
    with db.read_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)).all()
        run_state = session.scalar(select(DagRun.state))
    states: dict[str, object] = {}
    for task_id, index, state in sorted(rows):
        if index < 0:
            states[task_id] = state
        else:
            states.setdefault(task_id, {})[index] = state  # type: ignore[index]
    return run_state, states


def test_mapped_setup(settings: Settings, db: Database) -> None:
    run_state, states = _run(settings, db, "mapped_setup", MAPPED_SETUP)
    assert states == {
        "my_setup": {0: "success", 1: "failed", 2: "skipped"},
        "other_setup": "success",
        "other_teardown": "success",
        "other_work": "success",
        "my_teardown": "success",  # one setup instance succeeded: it runs
        "my_work": "upstream_failed",  # needs every setup instance
    }
    assert run_state == "failed"  # my_setup[1] failed


def test_mapped_teardown(settings: Settings, db: Database) -> None:
    run_state, states = _run(settings, db, "mapped_teardown", MAPPED_TEARDOWN)
    assert states == {
        "my_setup": "success",
        "my_teardown": {0: "success", 1: "success", 2: "success"},
        "my_work": "failed",
        "decorated_teardown": {0: "success", 1: "success"},
    }
    assert run_state == "failed"  # decided by my_work, not by the teardowns
