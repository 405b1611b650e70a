"""DAG file preload in the fork server (``executor.preload_dag_files``), with real processes on both backends."""

from __future__ import annotations

import os
import select as io_select
import time
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.executors import LocalExecutor
from headrace.executors.base import ExecutorEvent
from headrace.supervisor.request import TryRequest
from tests.supervisor.tryrows import create_run, queue_try, ti_row, try_row, write_dag


def _run_all(
    executor: LocalExecutor, requests: list[TryRequest], timeout: float = 60.0, expect: int | None = None
) -> list[ExecutorEvent]:
    """Queue ``requests`` (as slots open) and wait for ``expect`` (default: all of them) supervisors to end."""
    pending = list(requests)
    events: list[ExecutorEvent] = []
    want = len(requests) if expect is None else expect
    deadline = time.monotonic() + timeout
    while len(events) < want:
        assert time.monotonic() < deadline, f"only {len(events)} of {want} tries ended"
        while pending and executor.open_slots() > 0:
            executor.queue(pending.pop(0))
        fd = executor.fileno()
        if fd is not None:
            io_select.select([fd], [], [], 0.2)
        events.extend(executor.sync())
    return events


def _imports(counter: Path) -> list[int]:
    """Pids that imported the DAG file, except this test process (``create_run`` imports it too)."""
    if not counter.exists():
        return []
    return [int(p) for p in counter.read_text().split() if int(p) != os.getpid()]


COUNTED = """
    with open({counter!r}, "a") as _f:
        _f.write(f"{{os.getpid()}}\\n")
    VERSION = {version!r}

    def work(ti):
        with open(os.path.join({marks!r}, ti.task_id), "w") as f:
            f.write(f"{{VERSION}} {{os.getpid()}}")
        return VERSION

    with DAG("counted") as dag:
        for i in range(6):
            PythonOperator(task_id=f"t{{i}}", python_callable=work)
"""


def _local(settings: Settings, **executor: object) -> LocalExecutor:
    return LocalExecutor(
        settings.with_overrides({"core": {"parallelism": 2}, "executor": {"forkserver_idle_timeout": 5, **executor}})
    )


def test_task_processes_reuse_the_preloaded_module(db: Database, settings: Settings, tmp_path: Path) -> None:
    counter, marks = tmp_path / "imports", tmp_path / "marks"
    marks.mkdir()
    dag_file = write_dag(tmp_path / "dags", COUNTED.format(counter=str(counter), marks=str(marks), version="v1"))
    run_pk = create_run(db, dag_file, "counted")
    executor = _local(settings)
    requests = [queue_try(db, run_pk, f"t{i}", dag_file) for i in range(4)]
    events = _run_all(executor, requests)
    server_pid = executor.server_pid
    executor.terminate()
    assert {e.exit_code for e in events} == {0}
    assert {ti_row(db, r.ti_id).state for r in requests} == {"success"}
    # One import, by the fork server; four tries, each in its own task process.
    assert _imports(counter) == [server_pid]
    runners = {(marks / f"t{i}").read_text().split()[1] for i in range(4)}
    assert len(runners) == 4 and str(server_pid) not in runners
    for r in requests:
        row = try_row(db, r.ti_id, 1)
        assert row is not None and row.end_reason == "success" and row.pid is not None


def test_an_edited_file_is_imported_again(db: Database, settings: Settings, tmp_path: Path) -> None:
    counter, marks = tmp_path / "imports", tmp_path / "marks"
    marks.mkdir()
    dag_file = write_dag(tmp_path / "dags", COUNTED.format(counter=str(counter), marks=str(marks), version="v1"))
    run_pk = create_run(db, dag_file, "counted")
    executor = _local(settings)
    _run_all(executor, [queue_try(db, run_pk, f"t{i}", dag_file) for i in range(2)])
    assert [(marks / f"t{i}").read_text().split()[0] for i in range(2)] == ["v1", "v1"]
    write_dag(tmp_path / "dags", COUNTED.format(counter=str(counter), marks=str(marks), version="v2-edited"))
    stat = dag_file.stat()
    os.utime(dag_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new version even on coarse clocks
    before = len(_imports(counter))
    _run_all(executor, [queue_try(db, run_pk, f"t{i}", dag_file) for i in range(2, 5)])
    server_pid = executor.server_pid
    executor.terminate()
    assert [(marks / f"t{i}").read_text().split()[0] for i in range(2, 5)] == ["v2-edited"] * 3
    # The server imported the new version once; the tries reused it.
    assert _imports(counter)[before:] == [server_pid]


def test_a_file_that_starts_a_thread_is_not_preloaded(db: Database, settings: Settings, tmp_path: Path) -> None:
    counter, marks = tmp_path / "imports", tmp_path / "marks"
    marks.mkdir()
    dag_file = write_dag(
        tmp_path / "dags",
        COUNTED.format(
            counter=str(counter),
            marks=str(marks),
            version="threaded",
        )
        + """
    import threading
    threading.Thread(target=time.sleep, args=(0.3,)).start()
    """,
    )
    run_pk = create_run(db, dag_file, "counted")
    executor = _local(settings)
    requests = [queue_try(db, run_pk, f"t{i}", dag_file) for i in range(4)]
    executor.queue(requests[0])
    first_server = executor.server_pid
    events = _run_all(executor, requests[1:], expect=len(requests))
    second_server = executor.server_pid
    executor.terminate()
    assert sorted((e.ti_id, e.exit_code) for e in events) == sorted((r.ti_id, 0) for r in requests)
    assert {ti_row(db, r.ti_id).state for r in requests} == {"success"}
    assert executor.no_preload == {str(dag_file)}
    assert first_server is not None and second_server not in (None, first_server)
    # The first server imported it once (then quit); every try then imported it for itself.
    imports = _imports(counter)
    assert imports[0] == first_server and len(imports) == 5
    with db.session() as session:
        assert session.scalars(select(TaskTry.state)).all() == ["success"] * 4


def test_a_file_that_fails_to_import_fails_the_try_as_before(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("broken") as dag:
            PythonOperator(task_id="t0", python_callable=lambda: 1)
            PythonOperator(task_id="t1", python_callable=lambda: 1)
    """,
    )
    run_pk = create_run(db, dag_file, "broken")
    write_dag(
        tmp_path / "dags",
        """
        raise RuntimeError("the DAG file is broken")
    """,
    )
    outcomes = []
    for task_id, preload in (("t0", False), ("t1", True)):
        executor = _local(settings, preload_dag_files=preload)
        request = queue_try(db, run_pk, task_id, dag_file)
        assert [e.exit_code for e in _run_all(executor, [request])] == [0]
        executor.terminate()
        row = try_row(db, request.ti_id, 1)
        assert row is not None
        outcomes.append((ti_row(db, request.ti_id).state, row.end_reason, row.error))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == "failed" and outcomes[1][1] == "not_started"
    assert "RuntimeError: the DAG file is broken" in (outcomes[1][2] or "")


def test_preload_off_imports_per_try(db: Database, settings: Settings, tmp_path: Path) -> None:
    counter, marks = tmp_path / "imports", tmp_path / "marks"
    marks.mkdir()
    dag_file = write_dag(tmp_path / "dags", COUNTED.format(counter=str(counter), marks=str(marks), version="v1"))
    run_pk = create_run(db, dag_file, "counted")
    executor = _local(settings, preload_dag_files=False)
    events = _run_all(executor, [queue_try(db, run_pk, f"t{i}", dag_file) for i in range(3)])
    executor.terminate()
    assert {e.exit_code for e in events} == {0}
    assert len(_imports(counter)) == 3
