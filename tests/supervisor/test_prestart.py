"""The task process forked ahead of the claim (claim.prestart): released with what it runs, or sent away."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.logs.files import try_log_path
from headrace.supervisor.cgroups import CGROUP_PREFIX, hierarchy_in_use
from headrace.supervisor.limits import Limits
from headrace.supervisor.protocol import SetRenderedFields, encode
from headrace.supervisor.sql_store import SqlTryStore
from headrace.supervisor.store import TryTarget
from headrace.supervisor.watch import Gate, TaskWatch, fork_child
from tests.supervisor.tryrows import create_run, make_try, queue_try, run_supervisor, ti_row, write_dag, xcom_value


def _gate_child(gate: Gate, out: Path) -> int:
    def run() -> int:
        payload = gate.wait()
        out.write_bytes(b"shut" if payload is None else b"open:" + payload)
        return 0

    pid = fork_child(run)
    gate.forked()
    return pid


def test_gate_hands_its_payload_whole_or_shuts(tmp_path: Path) -> None:
    payload = os.urandom(300_000)  # more than a pipe holds: the child reads while the parent writes
    opened, shut = Gate(), Gate()
    pids = [_gate_child(opened, tmp_path / "opened"), _gate_child(shut, tmp_path / "shut")]
    opened.open(payload)
    shut.shut()
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert (tmp_path / "opened").read_bytes() == b"open:" + payload
    assert (tmp_path / "shut").read_bytes() == b"shut"


def test_opening_the_gate_of_a_child_already_gone_is_no_error() -> None:
    gate = Gate()
    pid = fork_child(lambda: 5)  # never reads the gate (a task process that could not join its cgroup)
    gate.forked()
    os.waitpid(pid, 0)
    gate.open(b"x" * 100_000)


def test_a_lost_claim_sends_the_task_process_away(db: Database, settings: Settings, tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        with DAG("lost") as dag:
            def once():
                with open({str(ran)!r}, "a") as f:
                    f.write("ran\\n")
            PythonOperator(task_id="t", python_callable=once)
    """,
    )
    request = make_try(db, dag_file, "lost", "t")
    assert run_supervisor(settings, request) == 0
    assert ran.read_text() == "ran\n"
    log_path = try_log_path(settings.base_log_folder, request.dag_id, request.run_id, request.task_id, 1)
    log_before = log_path.read_bytes()
    # The same try again: no longer queued, so the claim is lost.
    assert run_supervisor(settings, request) == 2
    assert ran.read_text() == "ran\n"  # the task process forked ahead ran nothing
    assert log_path.read_bytes() == log_before  # and the try's log is not touched
    assert ti_row(db, request.ti_id).state == "success"
    hierarchy = hierarchy_in_use(settings.get_str("core", "try_containment"))
    if hierarchy is not None:  # its cgroup, made before the claim, is gone again
        marker = f"{CGROUP_PREFIX}{request.ti_id}-{request.try_number}-"
        assert [p.name for p in hierarchy.parent.iterdir() if p.name.startswith(marker)] == []


def test_a_pull_after_the_rendered_fields_gets_its_own_answer(db: Database, settings: Settings, tmp_path: Path) -> None:
    """SetRenderedFields is never answered: the request after it (a pull) reads the answer to itself."""
    out = tmp_path / "pulled.txt"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        with DAG("notify") as dag:
            def pull(ti, n):
                with open({str(out)!r}, "w") as f:
                    f.write(f"{{n}} {{ti.xcom_pull(task_ids='up')}}")
            up = PythonOperator(task_id="up", python_callable=lambda: 42)
            down = PythonOperator(task_id="down", python_callable=pull, op_kwargs={{"n": "{{{{ 1 + 2 }}}}"}})
            up >> down
    """,
    )
    run_pk = create_run(db, dag_file, "notify")
    assert run_supervisor(settings, queue_try(db, run_pk, "up", dag_file)) == 0
    assert xcom_value(db, run_pk, "up") == "42"
    assert run_supervisor(settings, queue_try(db, run_pk, "down", dag_file)) == 0
    assert out.read_text() == "3 42"


def test_the_watch_answers_no_notification_not_even_a_broken_one(settings: Settings, db: Database) -> None:
    mine, theirs = socket.socketpair()
    watch = TaskWatch(
        store=SqlTryStore(settings, db),
        target=TryTarget(ti_id=1, dag_run_pk=1, dag_id="d", run_id="r", task_id="t", map_index=-1),
        try_row_id=1,
        limits=Limits(),
        say=lambda message, level="INFO": None,
        poll_interval=1.0,
        heartbeat_interval=1.0,
        kill_grace_period=1.0,
        stop_requested=lambda: False,
        try_number=1,
    )
    assert watch._answer(mine, encode(SetRenderedFields(try_number=1, fields={"a": "b"})).rstrip(b"\n")) is None
    assert watch.rendered_fields == {"a": "b"}
    assert watch._answer(mine, b'{"type": "set_rendered_fields", "try_number": "x"}') is None
    assert watch._answer(mine, b'{"type": "no_such_message"}') is None  # a request: answered, with an error
    theirs.settimeout(5)
    answer = theirs.recv(1 << 16)
    assert answer.count(b"\n") == 1 and b'"type":"error"' in answer
    mine.close()
    theirs.close()
