"""The scheduler enforces ``dagrun_timeout`` by itself (a housekeeping chore): the run fails, its try is stopped."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from tests.faults.scenario import alive
from tests.waiting import wait_until

from .helpers import FAST, parse_and_trigger, run_scheduler_until_done, run_states, ti_states, write_dag


def test_scheduler_fails_a_run_past_its_dagrun_timeout(settings: Settings, db: Database, tmp_path: Path) -> None:
    settings = settings.with_overrides(FAST)
    done = tmp_path / "done"
    write_dag(
        settings,
        "slow.py",
        f"""
        from headrace import DAG
        from headrace.operators import BashOperator

        with DAG("slow", dagrun_timeout=12):  # time for the try to start on a loaded machine
            work = BashOperator(task_id="work", bash_command="sleep 60; touch {done}")
            after = BashOperator(task_id="after", bash_command="true")
            work >> after
    """,
    )
    run_id = parse_and_trigger(settings, db, "slow")
    run_scheduler_until_done(settings, db, timeout=60)
    assert run_states(db) == {run_id: "failed"}
    assert ti_states(db) == {"work": "failed", "after": "skipped"}
    with db.session() as session:
        tt = session.scalars(select(TaskTry).where(TaskTry.task_id == "work")).one()
    assert tt.end_reason == "dagrun_timeout"
    # Its supervisor stopped the process tree at its next heartbeat: nothing of it is left to finish.
    wait_until(lambda: not alive(tt.pid), 30, "the timed-out task's process to be stopped")
    assert not done.exists()
