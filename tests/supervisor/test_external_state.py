"""A user marks a running try's task instance success/failed: its supervisor stops the task's processes."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.transitions import set_ti_state
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.sql_store import warm_up
from tests.supervisor.tryrows import fork_supervisor, make_try, ti_row, try_row, wait_exit, write_dag
from tests.waiting import wait_until


@pytest.mark.parametrize(("new_state", "ignores_sigterm"), [("failed", False), ("success", True)])
def test_marking_a_running_try_stops_its_process_tree(
    db: Database, settings: Settings, tmp_path: Path, new_state: str, ignores_sigterm: bool
) -> None:
    settings = settings.with_overrides(
        {
            "scheduler": {"heartbeat_interval": 0.2},
            "executor": {"kill_grace_period": 0.5},
        }
    )
    pids = tmp_path / "pids"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        import signal, subprocess
        with DAG("marked") as dag:
            def sleeper():
                if {ignores_sigterm!r}:
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                child = subprocess.Popen(["sleep", "60"])  # a grandchild: the whole tree must go
                open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
                time.sleep(60)
            PythonOperator(task_id="t", python_callable=sleeper, retries=2)
    """,
    )
    request = make_try(db, dag_file, "marked", "t")
    supervisor = fork_supervisor(settings, request)
    task_pid, child_pid = map(
        int,
        wait_until(
            lambda: pids.exists() and pids.read_text().count(" ") == 1 and pids.read_text(), what="task pids"
        ).split(),
    )
    processes = [psutil.Process(task_pid), psutil.Process(child_pid)]

    with db.session() as session:  # what the UI's "mark success/failed" does
        assert set_ti_state(session, request.ti_id, TI.RUNNING, TI(new_state), expected_try_number=1)

    assert wait_exit(supervisor, timeout=30) == 0
    gone, alive = psutil.wait_procs(processes, timeout=5)
    assert not alive, f"still alive: {alive}"
    ti = ti_row(db, request.ti_id)
    assert ti.state == new_state  # the user's state stands (no retry although retries=2)
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (row.end_reason, row.state) == ("externally_set", new_state)
    assert row.error == f"task instance was set to {new_state} from outside (by a user)"
    if ignores_sigterm:
        assert (row.signal, row.exit_code) == (9, None)
    else:  # SIGTERM became TaskTerminated in the task process, which exited 128 + 15
        assert (row.signal, row.exit_code) == (None, 143)
    log = Path(row.log_path).read_text()
    assert f"task instance was set to {new_state} from outside (by a user); stopping the task" in log
    if ignores_sigterm:
        assert "outlived the grace period; sending SIGKILL" in log


def test_heartbeat_keeps_a_running_try_running(db: Database, settings: Settings, tmp_path: Path) -> None:
    settings = settings.with_overrides({"scheduler": {"heartbeat_interval": 0.1}})
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("steady") as dag:
            PythonOperator(task_id="t", python_callable=lambda: time.sleep(1.0))
    """,
    )
    request = make_try(db, dag_file, "steady", "t")
    assert wait_exit(fork_supervisor(settings, request)) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None and row.heartbeat_at is not None and row.start_date is not None
    assert row.heartbeat_at > row.start_date  # it beat while running, and was not taken for a user's change
    assert (row.end_reason, ti_row(db, request.ti_id).state) == ("success", "success")


def test_warm_up_runs_the_heartbeat_check_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("warm") as dag:
            PythonOperator(task_id="t", python_callable=lambda: None)
    """,
    )
    request = make_try(db, dag_file, "warm", "t")
    before = ti_row(db, request.ti_id)
    # The fork server compiles every hot statement once (the heartbeat's check included) and rolls back:
    # it must not raise (a bad bind parameter would) and must leave the queued try as it was.
    warm_up(db)
    after = ti_row(db, request.ti_id)
    assert (after.state, after.try_number, after.start_date) == (before.state, before.try_number, before.start_date)
    assert after.state == "queued"
    assert try_row(db, request.ti_id, 1) is None
