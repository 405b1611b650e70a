"""The celery executor end to end: the real scheduler, real ``headrace celery worker`` processes, real brokers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from celery_workers import (
    Worker,
    celery_settings,
    delete_queues,
    forget_redis_keys,
)  # tests/celery is on sys.path (no package)
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagModel, TaskInstance, TaskTry
from headrace.executors.celery_app import make_app, send_try
from headrace.supervisor.request import TryRequest
from headrace.testing import run_scheduler_until
from tests.integration.helpers import parse_and_trigger, run_states, write_dag

WHO = """
import json, os
from pathlib import Path
from headrace import DAG
from headrace.operators import PythonOperator

OUT = Path({out!r})

def who(ti):
    (OUT / ti.task_id).write_text(json.dumps({{"tag": os.environ["WORKER_TAG"], "pid": os.getpid()}}))

with DAG("spread", schedule=None):
    first = PythonOperator(task_id="first", python_callable=who)
    fan = [PythonOperator(task_id=f"fan{{i}}", python_callable=who) for i in range(5)]
    heavy = PythonOperator(task_id="heavy", python_callable=who, queue={heavy!r})
    last = PythonOperator(task_id="last", python_callable=who)
    first >> fan >> heavy >> last
"""


@pytest.fixture
def queue_prefix() -> Iterator[str]:
    """A prefix no other test uses, for this test's queue names (their keys on Redis are deleted after it)."""
    prefix = f"hrtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    forget_redis_keys(prefix)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    """Workers a test starts (append to the list); all stopped at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def _run_until_done(settings: Settings, db: Database, each_loop=None, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    def finished() -> bool:
        states = set(run_states(db).values())
        return bool(states) and states <= {"success", "failed"}

    assert run_scheduler_until(settings, db, finished, each_loop=each_loop, timeout=timeout), run_states(db)


@pytest.mark.parametrize(
    ("broker", "db_url"), [("redis", "sqlite"), ("amqp", "postgresql")], indirect=["db_url"], ids=["redis", "amqp"]
)
def test_dag_runs_on_workers_routed_by_queue(
    broker: str, settings: Settings, db: Database, tmp_path: Path, queue_prefix: str, workers: list[Worker]
) -> None:
    """A fanout and a chain run to success on two workers; the task on queue "heavy" runs only on the worker
    consuming it; every try is recorded with this host and the task's true pid."""
    settings = celery_settings(settings, broker, queue_prefix)
    default, heavy = f"{queue_prefix}-default", f"{queue_prefix}-heavy"
    out = tmp_path / "out"
    out.mkdir()
    write_dag(settings, "spread.py", WHO.format(out=str(out), heavy=heavy))
    workers.append(
        Worker(
            settings,
            tmp_path / "a.log",
            ["--queues", default, "-c", "4", "-n", f"{queue_prefix}-a@%h"],
            {"WORKER_TAG": "a"},
        )
    )
    workers.append(
        Worker(
            settings,
            tmp_path / "b.log",
            ["--queues", heavy, "-c", "2", "-n", f"{queue_prefix}-b@%h"],
            {"WORKER_TAG": "b"},
        )
    )
    try:
        for worker in workers:
            worker.wait_ready()
        run_id = parse_and_trigger(settings, db, "spread")
        _run_until_done(settings, db)
        assert run_states(db) == {run_id: "success"}
        with db.session() as session:
            tries = session.scalars(select(TaskTry)).all()
        assert sorted(t.task_id for t in tries) == sorted(["first", *(f"fan{i}" for i in range(5)), "heavy", "last"])
        for t in tries:
            seen = json.loads((out / t.task_id).read_text())
            assert (t.try_number, t.state, t.hostname) == (1, "success", socket.gethostname())
            assert t.pid == seen["pid"], t.task_id
            assert seen["tag"] == ("b" if t.task_id == "heavy" else "a"), t.task_id
        for worker in workers:  # a worker is itself and at most its fork server
            assert len(worker.processes()) <= 2
    finally:
        delete_queues(settings, [default, heavy])


WAITS = """
import time
from collections.abc import Iterator
from pathlib import Path
from headrace import DAG
from headrace.operators import PythonOperator

def wait_for_release():
    while not Path({release!r}).exists():
        time.sleep(0.05)

with DAG("once", schedule=None):
    PythonOperator(task_id="wait", python_callable=wait_for_release)
"""

DROPPED = ("was not queued for this delivery", "is already running on this worker")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_duplicate_delivery_of_a_running_try_is_dropped(
    settings: Settings, db: Database, tmp_path: Path, queue_prefix: str, workers: list[Worker]
) -> None:
    """The same message sent again by hand while its try runs is dropped by a worker with a log line; the try
    succeeds once. ``celery status`` meanwhile lists both workers and the try with its pids."""
    settings = celery_settings(settings, "redis", queue_prefix)
    release = tmp_path / "release"
    write_dag(settings, "once.py", WAITS.format(release=str(release)))
    for name in ("a", "b"):
        workers.append(Worker(settings, tmp_path / f"{name}.log", ["-c", "1", "-n", f"{queue_prefix}-{name}@%h"]))
    for worker in workers:
        worker.wait_ready()
    parse_and_trigger(settings, db, "once")
    env = {**settings.to_env(), "COLUMNS": "300"}
    seen: dict[str, str] = {}

    def each_loop(_now: datetime) -> None:
        with db.session() as session:
            ti = session.scalars(select(TaskInstance)).one()
            fileloc = session.scalar(select(DagModel.fileloc).where(DagModel.dag_id == ti.dag_id))
        if ti.state != "running" or "sent" in seen:
            if "sent" in seen and not release.exists() and any(d in w.text() for w in workers for d in DROPPED):
                release.touch()
            return
        assert fileloc is not None and ti.external_executor_id is not None
        request = TryRequest(
            ti_id=ti.id,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=ti.try_number,
            fileloc=fileloc,
            queue=ti.queue,
            external_executor_id=ti.external_executor_id,
        )
        app = make_app(settings)
        send_try(app, settings, request)
        app.close()
        seen["sent"] = ti.external_executor_id
        seen["status"] = subprocess.run(
            [sys.executable, "-m", "headrace", "celery", "status", "--timeout", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    _run_until_done(settings, db, each_loop=each_loop)
    assert set(run_states(db).values()) == {"success"}
    with db.session() as session:
        tries = session.scalars(select(TaskTry)).all()
        ti = session.scalars(select(TaskInstance)).one()
    assert [(t.try_number, t.state) for t in tries] == [(1, "success")]
    assert (ti.state, ti.try_number) == ("success", 1)
    logs = [w.text() for w in workers]
    assert sum(any(d in log for d in DROPPED) for log in logs) == 1, logs
    assert all(log.count(f"headrace.run_try[{seen['sent']}] received") <= 1 for log in logs)
    status = seen["status"]
    host = socket.gethostname()
    nodes = {f"{queue_prefix}-a@{host}", f"{queue_prefix}-b@{host}"}  # --hostname's %h expanded
    assert {row[0] for row in _table_rows(status) if row[0] in nodes} == nodes, status
    # the try's row (the duplicate delivery may be listed too while its supervisor loses the claim)
    (running,) = [row for row in _table_rows(status) if len(row) == 10 and row[7] == str(tries[0].supervisor_pid)]
    assert running[0] in nodes and running[1:4] == ["once", "wait", tries[0].run_id], running
    assert running[6:9] == [host, str(tries[0].supervisor_pid), str(tries[0].pid)], running


def _table_rows(printed: str) -> list[list[str]]:
    """The cells of each row of the tables ``celery status`` printed (rich's box drawing)."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in printed.splitlines() if line.count("│") >= 2]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_idle_worker_is_at_most_two_processes(
    settings: Settings, tmp_path: Path, queue_prefix: str, workers: list[Worker]
) -> None:
    """An idle worker with 16 slots is one process (two while its fork server lingers), under 150 MiB."""
    settings = celery_settings(settings, "redis", queue_prefix)
    worker = Worker(settings, tmp_path / "idle.log", ["--concurrency", "16", "-n", f"{queue_prefix}@%h"])
    workers.append(worker)
    worker.wait_ready()
    processes = worker.processes()
    assert len(processes) <= 2, [p.cmdline() for p in processes]
    assert "concurrency: 16 (thread)" in worker.text()
    assert sum(p.memory_info().rss for p in processes) <= 150 * 1024 * 1024


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_worker_refuses_an_empty_queue_list(settings: Settings) -> None:
    env = {**settings.to_env(), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "headrace", "celery", "worker", "--queues", " , "],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "--queues" in proc.stderr


ONE = """
from headrace import DAG
from headrace.operators import BashOperator

with DAG("lost", schedule=None):
    BashOperator(task_id="only", bash_command="echo ran")
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_lost_message_is_requeued_and_runs_once(
    settings: Settings, db: Database, tmp_path: Path, queue_prefix: str, workers: list[Worker]
) -> None:
    """A try whose message nobody takes is queued again after ``scheduler.task_queued_timeout`` with a new
    message; once a worker comes, both messages are delivered (RabbitMQ) and the try runs once."""
    settings = celery_settings(settings, "amqp", queue_prefix).with_overrides(
        {"scheduler": {"task_queued_timeout": 1.0}}
    )
    default = f"{queue_prefix}-default"
    write_dag(settings, "lost.py", ONE)
    ids: list[str] = []

    def each_loop(_now: datetime) -> None:
        with db.session() as session:
            ti = session.scalars(select(TaskInstance)).one_or_none()
        if ti is not None and ti.state == "queued" and ti.external_executor_id not in ids:
            assert ti.external_executor_id is not None
            ids.append(ti.external_executor_id)

    try:
        parse_and_trigger(settings, db, "lost")
        assert run_scheduler_until(settings, db, lambda: len(ids) >= 2, each_loop=each_loop, timeout=30), ids
        with db.session() as session:
            ti = session.scalars(select(TaskInstance)).one()
        assert (ti.state, ti.try_number) == ("queued", 1)  # given back once, queued again as the same try
        workers.append(Worker(settings, tmp_path / "w.log", ["-c", "2", "-n", f"{queue_prefix}@%h"]))
        workers[0].wait_ready()
        _run_until_done(settings, db)
        with db.session() as session:
            tries = session.scalars(select(TaskTry)).all()
        assert [(t.try_number, t.state) for t in tries] == [(1, "success")]
        log = workers[0].text()
        assert sum(f"headrace.run_try[{i}] received" in log for i in ids) >= 2, log  # both messages arrived
        assert any(d in log for d in DROPPED), log  # the other delivery ran nothing
    finally:
        delete_queues(settings, [default])
