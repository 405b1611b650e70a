"""A scheduler SIGKILLed mid-run: a new one adopts the live try, finishes the run, and runs nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Lease, TaskInstance, TaskTry
from tests.waiting import wait_until

from .helpers import FAST, parse_and_trigger, run_states, tries_per_ti, write_dag


def start_scheduler(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env()}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "headrace.scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def running_with_try(db: Database, task_id: str) -> bool:
    with db.session() as session:
        ti = session.scalars(select(TaskInstance).where(TaskInstance.task_id == task_id)).one()
        has_try = session.scalars(select(TaskTry).where(TaskTry.task_instance_id == ti.id)).first() is not None
        return ti.state == "running" and has_try


def test_sigkill_scheduler_mid_run(settings: Settings, db: Database, tmp_path: Path) -> None:
    settings = settings.with_overrides(FAST)
    marker = tmp_path / "started"
    release = tmp_path / "release"  # the slow task runs until the test creates this file
    write_dag(
        settings,
        "slow.py",
        f"""
        from headrace import DAG
        from headrace.operators import BashOperator, EmptyOperator

        with DAG("slow"):
            first = EmptyOperator(task_id="first")
            slow = BashOperator(task_id="slow", bash_command="echo x >> {marker}; while [ ! -f {release} ]; do sleep 0.05; done")
            last = BashOperator(task_id="last", bash_command="echo last")
            first >> slow >> last
    """,
    )
    run_id = parse_and_trigger(settings, db, "slow")
    log = tmp_path / "scheduler.log"
    first = start_scheduler(settings, log)
    try:
        wait_until(lambda: running_with_try(db, "slow"), 30, "task 'slow' to run")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = start_scheduler(settings, log)
    try:
        wait_until(lambda: log.read_text().count("at start:") == 2, 30, "the second scheduler to start")
        assert "adopted 1 running tries" in log.read_text()
        release.touch()
        wait_until(lambda: run_states(db) == {run_id: "success"}, 60, f"the run to succeed; log: {log}")
    finally:
        release.touch()  # never leave the task waiting, even when the test fails
        second.send_signal(signal.SIGTERM)
        code = second.wait(timeout=30)
    assert code == 0, log.read_text()
    assert tries_per_ti(db) == {"first": [1], "slow": [1], "last": [1]}
    assert marker.read_text() == "x\n"  # the slow task ran once
    with db.session() as session:
        assert session.get(Lease, "scheduler") is None  # the clean stop released the lease
