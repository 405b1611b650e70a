"""Issue 13: a supervisor SIGKILLed mid-try must not leave its task running beside the retry.

Ten supervisors are killed while their task's code runs (five ``@task``
functions, five BashOperators whose shell is a grandchild of the supervisor).
The task process dies with its supervisor (parent-death signal), what is left
of the try is killed before the retry (by the fork server, which removes the
killed supervisor's try cgroup once it reaps it; without a cgroup, by the
zombie path, which kills the try's process group), and the retry runs the
code again: every task's code ran to its end exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.scheduler.runs import trigger_dag

from .scenario import (
    FAULT,
    alive,
    count,
    counting_dag,
    finished,
    run_states,
    start_scheduler,
    stop_scheduler,
    ti_rows,
    try_rows,
)


@pytest.mark.timeout(240)
def test_sigkill_supervisor_mid_try_ten_times(fault_settings: Settings, fault_db: Database, tmp_path: Path) -> None:
    settings = fault_settings.with_overrides(FAULT)
    out = tmp_path / "out"
    ids = counting_dag(settings, "victims", out, tasks=10, seconds=4)
    assert DagProcessor(settings, fault_db).refresh(datetime.now(UTC)).errors == 0
    with fault_db.session() as session:
        run_id = trigger_dag(session, "victims", now=datetime.now(UTC)).run_id
    log = tmp_path / "scheduler.log"
    scheduler = start_scheduler(settings, log)
    killed: dict[str, tuple[int, int | None]] = {}  # task_id -> (supervisor pid, task pid) of try 1
    try:
        deadline = time.monotonic() + 120
        while len(killed) < len(ids):
            assert time.monotonic() < deadline, f"only killed {sorted(killed)}; log:\n{log.read_text()[-3000:]}"
            assert scheduler.poll() is None, log.read_text()[-3000:]
            for tt in try_rows(fault_db):
                # Kill once the task's code is running (it wrote its start line), well before it ends.
                if (
                    tt.try_number == 1
                    and tt.task_id not in killed
                    and tt.end_date is None
                    and count(out / f"{tt.task_id}.started") == 1
                ):
                    os.kill(tt.supervisor_pid, signal.SIGKILL)
                    killed[tt.task_id] = (tt.supervisor_pid, tt.pid)
            time.sleep(0.02)
        deadline = time.monotonic() + 120
        while not finished(fault_db):
            assert time.monotonic() < deadline, f"run not finished: {run_states(fault_db)}; {log.read_text()[-3000:]}"
            time.sleep(0.1)
    finally:
        stop_scheduler(scheduler, log)
    assert run_states(fault_db) == {run_id: "success"}
    for task_id in ids:
        assert count(out / f"{task_id}.done") == 1, (
            f"{task_id}'s code ran to its end {count(out / f'{task_id}.done')} times"
        )
        assert count(out / f"{task_id}.started") == 2  # try 1 (killed) and try 2
    tis = ti_rows(fault_db)
    assert {t: ti.try_number for t, ti in tis.items()} == {t: 2 for t in ids}
    first = {tt.task_id: tt for tt in try_rows(fault_db) if tt.try_number == 1}
    assert {t: tt.end_reason for t, tt in first.items()} == {t: "zombie" for t in ids}
    for task_id, (supervisor, task_pid) in killed.items():
        assert not alive(supervisor) and not alive(task_pid), task_id
    # The BashOperators' shells (grandchildren of the killed supervisors) were stopped, not left to finish:
    # by the fork server, which removes a killed supervisor's try cgroup (killing what is in it) as soon as
    # it reaps that supervisor, or else (no cgroup) by the fencing on the zombie path.
    text = log.read_text()
    assert "fencing: killing" in text or "try cgroup(s) left by killed supervisors" in text
