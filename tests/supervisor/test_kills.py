"""Tries ended from outside the task's code: memory limit, SIGKILL, supervisor SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.executors.sequential import child_environment, supervisor_command
from headrace.supervisor.cgroups import hierarchy_in_use
from tests.supervisor.tryrows import fork_supervisor, make_try, requeue, ti_row, try_row, wait_exit, write_dag
from tests.waiting import wait_until

MIB = 1024 * 1024


def test_memory_limit_kills_the_tree(db: Database, settings: Settings, tmp_path: Path) -> None:
    settings = settings.with_overrides({"executor": {"memory_poll_interval": 0.05}})
    dag_file = write_dag(
        tmp_path / "dags",
        """
        def on_failure(context):
            print("OOM CALLBACK:", context["exception"])
        with DAG("mem") as dag:
            def hog():
                data = b"x" * (400 * 1024 * 1024)
                time.sleep(30)
            PythonOperator(task_id="t", python_callable=hog, memory_limit="100MiB",
                           on_failure_callback=on_failure)
    """,
    )
    request = make_try(db, dag_file, "mem", "t")
    # A fresh interpreter (as the sequential executor runs it): its baseline RSS is well under the limit.
    proc = subprocess.run(supervisor_command(request), env=child_environment(settings), timeout=60, check=False)
    assert proc.returncode == 0
    ti = ti_row(db, request.ti_id)
    row = try_row(db, request.ti_id, 1)
    assert row is not None and row.peak_rss_bytes is not None
    assert (ti.state, ti.end_reason, row.end_reason, row.signal) == (
        "failed",
        "memory_limit_exceeded",
        "memory_limit_exceeded",
        9,
    )
    assert row.peak_rss_bytes > 100 * MIB
    log = Path(row.log_path).read_text()
    # Measured by the try's cgroup where it accounts memory (as on CI), else by sampling the tree.
    hierarchy = hierarchy_in_use("auto")
    measure = "try's cgroup memory" if hierarchy is not None and hierarchy.memory else "process tree RSS"
    assert f"memory_limit 100.0 MiB exceeded: {measure} " in log and "; killing" in log
    assert "; memory_limit 100 MiB" in log  # the start line gives the limit as the DAG author writes it
    assert "OOM CALLBACK: memory_limit 100.0 MiB exceeded" in log


def test_sigkill_from_outside_then_next_try_records_its_true_pid(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        with DAG("kill") as dag:
            def victim(ti):
                open(os.path.join({str(pid_dir)!r}, str(ti.try_number)), "w").write(str(os.getpid()))
                if ti.try_number == 1:
                    time.sleep(60)
            PythonOperator(task_id="t", python_callable=victim, retries=1, retry_delay=0)
    """,
    )
    request = make_try(db, dag_file, "kill", "t")
    supervisor = fork_supervisor(settings, request)
    first_pid = int(wait_until(lambda: (pid_dir / "1").exists() and (pid_dir / "1").read_text(), what="try 1 pid"))
    row = wait_until(
        lambda: (r := try_row(db, request.ti_id, 1)) is not None and r.pid is not None and r, what="pid row"
    )
    assert row.pid == first_pid
    os.kill(first_pid, signal.SIGKILL)
    assert wait_exit(supervisor) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (row.end_reason, row.signal, row.exit_code) == ("killed", 9, None)
    assert row.error == "task process killed by signal SIGKILL (9)"
    assert ti_row(db, request.ti_id).state == "up_for_retry"

    second = requeue(db, request)
    assert wait_exit(fork_supervisor(settings, second)) == 0
    row2 = try_row(db, request.ti_id, 2)
    assert row2 is not None and row2.state == "success"
    assert row2.pid == int((pid_dir / "2").read_text()) != first_pid
    assert row2.supervisor_pid != row.supervisor_pid


def test_supervisor_sigterm_stops_the_task_tree(db: Database, settings: Settings, tmp_path: Path) -> None:
    settings = settings.with_overrides({"executor": {"kill_grace_period": 1.0, "memory_poll_interval": 0.05}})
    sleeper = tmp_path / "sleeper.pid"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        def on_retry(context):
            print("RETRY CALLBACK")
        with DAG("term") as dag:
            BashOperator(task_id="b", bash_command="sleep 60 & echo $! > {sleeper}; wait",
                         retries=1, on_retry_callback=on_retry)
    """,
    )
    request = make_try(db, dag_file, "term", "b")
    supervisor = fork_supervisor(settings, request)
    sleep_pid = int(wait_until(lambda: sleeper.exists() and sleeper.read_text().strip(), what="sleep pid"))
    wait_until(lambda: (r := try_row(db, request.ti_id, 1)) is not None and r.pid, what="pid row")
    os.kill(supervisor, signal.SIGTERM)
    assert wait_exit(supervisor) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (row.end_reason, row.signal) == ("killed", 15)
    assert ti_row(db, request.ti_id).state == "up_for_retry"
    assert not psutil.pid_exists(sleep_pid) or psutil.Process(sleep_pid).status() == psutil.STATUS_ZOMBIE
    log = Path(row.log_path).read_text()
    assert "the supervisor was told to stop (SIGTERM)" in log
    assert "RETRY CALLBACK" in log


def test_supervisor_module_rejects_bad_usage() -> None:
    proc = subprocess.run([sys.executable, "-m", "headrace.supervisor", "{"], capture_output=True, check=False)
    assert proc.returncode == 64
