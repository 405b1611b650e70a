"""LocalExecutor and its fork server, with real processes on both backends."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import psutil
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.executors import LocalExecutor, make_executor
from headrace.executors.base import ExecutorEvent
from headrace.supervisor.identity import ProcessIdentity

from supervisor.tryrows import create_run, poll, queue_try, ti_row, try_row, write_dag


def _drain(executor: LocalExecutor, want: int, timeout: float = 45.0) -> list[ExecutorEvent]:
    events: list[ExecutorEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < want:
        assert time.monotonic() < deadline, f"only {len(events)} of {want} tries ended"
        fd = executor.fileno()
        if fd is not None:
            select.select([fd], [], [], 0.5)
        events.extend(executor.sync())
    return events


def test_twenty_tries_never_more_than_parallelism(db: Database, settings: Settings, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    dag_file = write_dag(tmp_path / "dags", f"""
        with DAG("many") as dag:
            def work(ti):
                mark = os.path.join({str(marks)!r}, ti.task_id)
                open(mark + ".start", "w").write(str(time.time()))
                time.sleep(0.05)
                open(mark + ".end", "w").write(str(time.time()))
            for i in range(20):
                PythonOperator(task_id=f"t{{i}}", python_callable=work)
    """)
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
