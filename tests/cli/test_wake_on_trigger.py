"""A trigger, an unpause and a clear wake a real ``headrace scheduler`` at once (headrace.db.wakeup).

The scheduler runs with ``loop_interval`` 30 s and every chore that could cause a full pass (heartbeat,
lease renewal, DAG parsing, stuck-queued check) at 60 s or more, so within :data:`PROMPT` seconds only a
wake explains that it looked. (The speed itself is measured by benchmarks/startup_latency.py.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.scheduler.user_actions import clear_task_instances
from tests.cli.conftest import Cli
from tests.waiting import wait_until

SLOW_TICKS = {
    "HEADRACE__SCHEDULER__LOOP_INTERVAL": "30",
    "HEADRACE__SCHEDULER__HEARTBEAT_INTERVAL": "60",
    "HEADRACE__SCHEDULER__LEASE_TTL": "180",
    "HEADRACE__SCHEDULER__DAG_DIR_LIST_INTERVAL": "600",
    "HEADRACE__SCHEDULER__TASK_QUEUED_TIMEOUT": "3600",
}
PROMPT = 15.0
"""Half of ``loop_interval``: a run that starts within this was seen because of a wake."""

DAG = """
from headrace import DAG
from headrace.operators import BashOperator

with DAG("wake_demo", schedule=None, max_active_runs=4):
    BashOperator(task_id="first", bash_command="echo first")
"""


@pytest.fixture
def scheduler(cli_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path) -> Iterator[Path]:
    """A ``headrace scheduler`` subprocess with slow ticks, idle after its first loops; yields its log."""
    (settings.dags_folder / "wake_demo.py").write_text(textwrap.dedent(DAG))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).dags == 1
    cli_env.update(SLOW_TICKS)
    log = tmp_path / "scheduler.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "headrace", "scheduler"], env=cli_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: "at start:" in log.read_text(), 60, f"the scheduler to start; log: {log}")
        yield log
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0, log.read_text()


def run_states(db: Database) -> list[str]:
    with db.read_session() as session:
        return list(session.scalars(select(DagRun.state).where(DagRun.dag_id == "wake_demo").order_by(DagRun.id)))


def test_a_cli_trigger_wakes_the_scheduler(scheduler: Path, cli: Cli, db: Database) -> None:
    for n in (1, 2, 3):  # the 2nd and 3rd come while it idles, long after its start-up passes
        r = cli("dags", "trigger", "wake_demo")
        assert r.code == 0, r.err
        wait_until(lambda n=n: run_states(db) == ["success"] * n, PROMPT, f"run {n} to succeed; log: {scheduler}")


def test_an_unpause_wakes_the_scheduler(scheduler: Path, cli: Cli, db: Database) -> None:
    assert cli("dags", "pause", "wake_demo").code == 0
    assert cli("dags", "trigger", "wake_demo").code == 0
    assert run_states(db) == ["queued"]  # a paused DAG's run waits
    assert cli("dags", "unpause", "wake_demo").code == 0
    wait_until(lambda: run_states(db) == ["success"], PROMPT, f"the run to succeed after the unpause; log: {scheduler}")


def test_a_clear_wakes_the_scheduler(scheduler: Path, cli: Cli, db: Database) -> None:
    assert cli("dags", "trigger", "wake_demo").code == 0
    wait_until(lambda: run_states(db) == ["success"], PROMPT, f"the run to succeed; log: {scheduler}")
    with db.session() as session:  # what the API's and UI's clear call
        run = session.scalars(select(DagRun).where(DagRun.dag_id == "wake_demo")).one()
        assert clear_task_instances(session, run, ["first"], now=datetime.now(UTC)).cleared

    def second_try_done() -> bool:
        with db.read_session() as session:
            ti = session.scalars(select(TaskInstance).where(TaskInstance.task_id == "first")).one()
            return ti.state == "success" and ti.try_number == 2

    wait_until(second_try_done, PROMPT, f"the cleared task to run again; log: {scheduler}")
    # the run ends in the scheduler's pass after its task instance did (polling can see the one before the other)
    wait_until(lambda: run_states(db) == ["success"], PROMPT, f"the cleared run to succeed again; log: {scheduler}")
