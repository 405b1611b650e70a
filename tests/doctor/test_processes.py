"""Processes and running tries, with real processes: alive, pid reused, gone; a real fork server explained or not."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psutil
from sqlalchemy import update

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import SchedulerJob
from headrace.doctor.findings import Area, Severity
from headrace.doctor.processes import headrace_image, load_running, process_findings, try_findings
from tests.doctor.rows import Runs, add_scheduler_job, create_time, sleeper, stop
from tests.waiting import wait_until


def test_headrace_image_reads_command_lines() -> None:
    py = sys.executable
    assert headrace_image([py, "-m", "headrace.executors.forkserver"]) == "forkserver"
    assert headrace_image([py, "-m", "headrace.supervisor", "{}"]) == "supervisor"
    assert headrace_image([py, "-m", "headrace", "scheduler"]) == "scheduler"
    assert headrace_image(["/venv/bin/headrace", "standalone", "--port", "0"]) == "scheduler"
    assert headrace_image([py, "/venv/bin/headrace", "api-server"]) == "api-server"
    assert headrace_image(["/venv/bin/headrace", "dags", "list"]) == "cli"
    assert headrace_image([py, "-m", "pytest", "tests/headrace"]) is None
    assert headrace_image(["vim", "headrace/doctor/processes.py"]) is None


def _dead_pid() -> tuple[int, float]:
    proc = sleeper(60)
    pid, started = proc.pid, create_time(proc.pid)
    stop(proc)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).create_time() != started
    return pid, started


def test_running_tries_alive_reused_and_gone(db: Database, settings: Settings) -> None:
    sup, task, sup2 = sleeper(), sleeper(), sleeper()
    try:
        now = datetime.now(UTC)
        runs = Runs(db, "procs")
        live_sup, live_task = (sup.pid, create_time(sup.pid)), (task.pid, create_time(task.pid))
        runs.add_try("fine", now, None, state="running", supervisor=live_sup, process=live_task)
        # the task's pid is alive but was recorded with an earlier start time: someone else has it now
        runs.add_try(
            "reused",
            now,
            None,
            state="running",
            supervisor=(sup2.pid, create_time(sup2.pid)),
            process=(task.pid, live_task[1] - 100.0),
        )
        gone = _dead_pid()
        runs.add_try("gone", now, None, state="running", supervisor=gone, process=_dead_pid())
        runs.add_try(
            "remote", now, None, state="running", host="elsewhere.example", heartbeat_at=now - timedelta(seconds=400)
        )

        tries, jobs = load_running(db)
        findings = {f.figures.get("task_id"): f for f in try_findings(settings, tries, now)}

        assert findings["fine"].severity is Severity.OK
        assert findings["fine"].figures["supervisor"] == "alive" and findings["fine"].figures["task_process"] == "alive"

        reused = findings["reused"]
        assert reused.severity is Severity.WARNING
        assert f"pid {task.pid} now belongs to another process (started 100.0 s later" in reused.title
        assert "task_instance_heartbeat_timeout" in reused.suggestion and "headrace ps" in reused.suggestion

        dead = findings["gone"]
        assert dead.severity is Severity.WARNING
        assert f"supervisor pid {gone[0]}: not alive" in dead.title
        assert "task process pid" in dead.title

        remote = findings["remote"]
        assert remote.severity is Severity.WARNING and "elsewhere.example" in remote.title
        assert remote.figures["heartbeat_age_seconds"] >= 400

        # the live pair is explained as the try's supervisor and task process
        procs = process_findings(settings, tries, jobs, now)
        summary = procs[0]
        listed = {p["pid"]: p for p in summary.figures["process_list"]}
        assert listed[sup.pid]["role"] == "supervisor" and "procs.fine try 1" in listed[sup.pid]["why"]
        assert listed[task.pid]["role"] == "task process"
        assert summary.figures["running_tries_here"] == 3
        assert "no pool of idle workers" in summary.title
    finally:
        for proc in (sup, task, sup2):
            stop(proc)


def test_no_running_tries_is_ok(db: Database, settings: Settings) -> None:
    tries, _jobs = load_running(db)
    [finding] = try_findings(settings, tries, datetime.now(UTC))
    assert finding.severity is Severity.OK and finding.area is Area.TRIES


def _wait_exec(pid: int, module: str, timeout: float = 60.0) -> None:
    """Poll until child ``pid`` runs ``python -m <module>`` (right after fork it still shows this process's
    command line, which the doctor would not recognise); fail after ``timeout`` s."""
    wait_until(lambda: module in psutil.Process(pid).cmdline(), timeout, f"pid {pid} to exec {module}")


def test_fork_server_unexplained_then_explained_by_its_scheduler_job(db: Database, settings: Settings) -> None:
    env = {**os.environ, **settings.to_env(), "HEADRACE__EXECUTOR__FORKSERVER_IDLE_TIMEOUT": "60"}
    server = subprocess.Popen(
        [sys.executable, "-m", "headrace.executors.forkserver"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_exec(server.pid, "headrace.executors.forkserver")
        now = datetime.now(UTC)
        tries, jobs = load_running(db)
        found = process_findings(settings, tries, jobs, now)
        unexplained = [f for f in found if f.figures.get("pid") == server.pid]
        assert len(unexplained) == 1 and unexplained[0].severity is Severity.WARNING
        assert unexplained[0].title.startswith(f"unexplained headrace process pid {server.pid}")
        assert "headrace.executors.forkserver" in unexplained[0].title

        # this test process plays the scheduler that started it: a live scheduler_job row holding the lease
        me = psutil.Process()
        job_id = add_scheduler_job(db, now, heartbeat_age=2)
        tries, jobs = load_running(db)
        found = process_findings(settings, tries, jobs, now)
        server_finding = next(f for f in found if f.figures.get("pid") == server.pid)
        assert server_finding.severity is Severity.INFO
        assert f"fork server of scheduler job {job_id} (idle, exits after executor.forkserver_idle_timeout" in (
            server_finding.title
        )
        summary = found[0]
        roles = {p["pid"]: p["role"] for p in summary.figures["process_list"]}
        assert roles[me.pid] == "scheduler" and roles[server.pid] == "idle fork server"
        listed = {p["pid"]: p["why"] for p in summary.figures["process_list"]}
        assert listed[me.pid].startswith(f"scheduler job {job_id} (heartbeat 2.0 s ago, holds the lease")

        with db.session() as session:  # the job ended: its fork server is unexplained again
            session.execute(update(SchedulerJob).values(ended_at=now))
        tries, jobs = load_running(db)
        found = process_findings(settings, tries, jobs, now)
        assert any(f.severity is Severity.WARNING and f.figures.get("pid") == server.pid for f in found)
    finally:
        assert server.stdin is not None
        server.stdin.close()  # EOF: the fork server exits
        server.wait(timeout=20)
