"""LocalExecutor and its fork server, with real processes on both backends."""

from __future__ import annotations

import os
import select as io_select
import signal
import subprocess
import time
from pathlib import Path

import psutil
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.executors import LocalExecutor, make_executor
from headrace.executors.base import ExecutorEvent
from headrace.supervisor.cgroups import Containment, hierarchy_in_use
from headrace.supervisor.identity import ProcessIdentity
from tests.supervisor.tryrows import create_run, queue_try, ti_row, try_row, write_dag
from tests.waiting import wait_until


def _drain(executor: LocalExecutor, want: int, timeout: float = 45.0) -> list[ExecutorEvent]:
    events: list[ExecutorEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < want:
        assert time.monotonic() < deadline, f"only {len(events)} of {want} tries ended"
        fd = executor.fileno()
        if fd is not None:
            io_select.select([fd], [], [], 0.5)
        events.extend(executor.sync())
    return events


def test_twenty_tries_never_more_than_parallelism(db: Database, settings: Settings, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        with DAG("many") as dag:
            def work(ti):
                mark = os.path.join({str(marks)!r}, ti.task_id)
                open(mark + ".start", "w").write(str(time.time()))
                time.sleep(0.05)
                open(mark + ".end", "w").write(str(time.time()))
            for i in range(20):
                PythonOperator(task_id=f"t{{i}}", python_callable=work)
    """,
    )
    settings = settings.with_overrides({"core": {"parallelism": 4}, "executor": {"forkserver_idle_timeout": 5}})
    executor = make_executor(settings.with_overrides({"core": {"executor": "local"}}))
    assert isinstance(executor, LocalExecutor)
    run_pk = create_run(db, dag_file, "many")
    pending = [queue_try(db, run_pk, f"t{i}", dag_file) for i in range(20)]
    events: list[ExecutorEvent] = []
    executor.start()
    deadline = time.monotonic() + 60
    while pending or executor.open_slots() < 4:
        assert time.monotonic() < deadline
        while pending and executor.open_slots() > 0:
            executor.queue(pending.pop(0))
        assert executor.open_slots() >= 0
        events.extend(_drain(executor, 1))
    executor.terminate()
    assert len(events) == 20 and {e.exit_code for e in events} == {0}
    spans = []
    for i in range(20):
        start = float((marks / f"t{i}.start").read_text())
        end = float((marks / f"t{i}.end").read_text())
        spans.append((start, end))
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert 1 <= most <= 4
    with db.session() as session:
        states = session.scalars(select(TaskTry.state)).all()
    assert states == ["success"] * 20


def _forkservers_of_this_process() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "headrace.executors.forkserver" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_fork_server_exits_when_idle(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("idle") as dag:
            PythonOperator(task_id="t", python_callable=lambda: 1)
    """,
    )
    executor = LocalExecutor(settings.with_overrides({"executor": {"forkserver_idle_timeout": 1.0}}))
    request = queue_try(db, create_run(db, dag_file, "idle"), "t", dag_file)
    executor.queue(request)
    server_pid = executor.server_pid
    assert server_pid is not None
    assert _drain(executor, 1)[0] == ExecutorEvent(request.ti_id, 1, "exited", 0)
    assert ti_row(db, request.ti_id).state == "success"

    def server_gone() -> bool:
        fd = executor.fileno()
        if fd is not None:
            io_select.select([fd], [], [], 0.5)
        executor.sync()
        return executor.server_pid is None

    wait_until(server_gone, timeout=10, what="fork server idle exit")
    assert executor.fileno() is None
    assert not psutil.pid_exists(server_pid)
    assert _forkservers_of_this_process() == []
    # Started again on demand.
    again = queue_try(db, create_run(db, dag_file, "idle", run_id="manual__2"), "t", dag_file)
    executor.queue(again)
    assert executor.server_pid not in (None, server_pid)
    assert _drain(executor, 1)[0].exit_code == 0
    executor.terminate()
    assert _forkservers_of_this_process() == []


def test_supervisors_outlive_the_fork_server(db: Database, settings: Settings, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        with DAG("gated") as dag:
            def wait_for_gate():
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
                return "through"
            PythonOperator(task_id="t", python_callable=wait_for_gate)
    """,
    )
    executor = LocalExecutor(settings)
    request = queue_try(db, create_run(db, dag_file, "gated"), "t", dag_file)
    executor.queue(request)
    row = wait_until(lambda: (r := try_row(db, request.ti_id, 1)) is not None and r.pid and r, what="task started")
    supervisor = ProcessIdentity(row.hostname, row.supervisor_pid, row.supervisor_start_time)
    assert supervisor.is_alive()
    server_pid = executor.server_pid
    executor.sync()  # take the "started" event
    executor.terminate()  # closes the fork server's stdin: it exits, the supervisor must not
    assert executor.server_pid is None and not psutil.pid_exists(server_pid or -1)
    assert supervisor.is_alive()
    assert executor.open_slots() == settings.parallelism - 1
    gate.touch()
    event = wait_until(lambda: executor.sync(), what="orphaned supervisor reported")
    assert event == [ExecutorEvent(request.ti_id, 1, "exited", None)]
    ti = ti_row(db, request.ti_id)
    assert (ti.state, ti.end_reason) == ("success", "success")
    assert not supervisor.is_alive()
    assert executor.open_slots() == settings.parallelism


def test_fork_server_removes_try_cgroups_of_killed_supervisors(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """The fork server sweeps stale try cgroups (its supervisors do not): when it starts, and when one of
    its supervisors is killed mid-try; what was left running in them is killed, and nothing else: a try
    running beside them goes on."""
    hierarchy = hierarchy_in_use("auto")
    assert hierarchy is not None, "CI runs where a cgroup hierarchy is writable"
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names a supervisor that was SIGKILLed before this server started
    stale = Containment(hierarchy, f"77-1-{gone.pid}")
    stale.prepare()
    orphan = subprocess.Popen(["sleep", "600"])
    escaped_pid = tmp_path / "escaped.pid"
    gate = tmp_path / "gate"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        import subprocess
        with DAG("killed") as dag:
            def escape_then_wait():
                sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
                open({str(escaped_pid)!r}, "w").write(str(sleeper.pid))
                time.sleep(600)
            def wait_for_gate():
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
            PythonOperator(task_id="victim", python_callable=escape_then_wait)
            PythonOperator(task_id="bystander", python_callable=wait_for_gate)
    """,
    )
    executor = LocalExecutor(settings)
    escaped = None
    try:
        assert stale.path is not None
        (stale.path / "cgroup.procs").write_text(str(orphan.pid))
        run_pk = create_run(db, dag_file, "killed")
        victim = queue_try(db, run_pk, "victim", dag_file)
        bystander = queue_try(db, run_pk, "bystander", dag_file)
        executor.queue(victim)
        executor.queue(bystander)
        row = wait_until(
            lambda: (r := try_row(db, victim.ti_id, 1)) is not None and escaped_pid.exists() and r,
            what="victim started and escaped",
        )
        other = wait_until(lambda: (r := try_row(db, bystander.ti_id, 1)) is not None and r.pid and r, what="bystander")
        assert not stale.path.exists()  # swept when the server started
        assert orphan.wait(timeout=5) == -9
        escaped = int(escaped_pid.read_text())
        try_cgroup = hierarchy.parent / f"headrace-try-{victim.ti_id}-1-{row.supervisor_pid}"
        assert try_cgroup.exists() and psutil.pid_exists(escaped)
        os.kill(row.supervisor_pid, signal.SIGKILL)
        event = _drain(executor, 1)[0]
        assert (event.ti_id, event.exit_code) == (victim.ti_id, -signal.SIGKILL)
        assert not try_cgroup.exists()  # swept once the server reaped the killed supervisor
        wait_until(
            lambda: not psutil.pid_exists(escaped) or psutil.Process(escaped).status() == psutil.STATUS_ZOMBIE,
            what="escaped process killed",
        )
        assert psutil.pid_exists(other.supervisor_pid) and psutil.pid_exists(other.pid)  # the sweep spared it
        gate.touch()
        assert _drain(executor, 1)[0] == ExecutorEvent(bystander.ti_id, 1, "exited", 0)
        assert ti_row(db, bystander.ti_id).state == "success"
    finally:
        executor.terminate()
        orphan.kill()
        orphan.wait()
        if escaped is not None and psutil.pid_exists(escaped):
            os.kill(escaped, signal.SIGKILL)
        stale.remove()
