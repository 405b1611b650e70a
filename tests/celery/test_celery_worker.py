"""The worker's own features: ``celery.worker_memory_limit``, Flower against headrace's Celery app, a try it
cannot start requeued."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_received
from celery_workers import Worker, celery_settings, forget_redis_keys  # tests/celery is on sys.path (no package)
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry
from headrace.executors.celery_app import send_try, task_id
from headrace.executors.celery_worker import TryRunner, worker_app
from headrace.supervisor.request import TryRequest
from headrace.testing import run_scheduler_until
from tests.integration.helpers import parse_and_trigger, run_states, write_dag


@pytest.fixture
def queue_prefix() -> Iterator[str]:
    """A prefix no other test uses, for this test's queue names (their keys on Redis are deleted after it)."""
    prefix = f"hrtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    forget_redis_keys(prefix)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test starts (append to the list); all stopped at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


HOG = """
import time
from pathlib import Path
from headrace import DAG
from headrace.operators import PythonOperator

def hold():
    while not Path({release!r}).exists():
        time.sleep(0.05)

with DAG("hog", schedule=None):
    PythonOperator(task_id="hold", python_callable=hold)
"""


def _status(settings: Settings) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(settings.to_env(), COLUMNS="300")
    proc = subprocess.run(
        [sys.executable, "-m", "headrace", "celery", "status", "--timeout", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_worker_over_its_memory_limit_stops_consuming_until_back_under(
    settings: Settings, db: Database, tmp_path: Path, queue_prefix: str, workers: list[Worker]
) -> None:
    """With a worker_memory_limit below one try's RSS, the worker stops consuming its queue while the try runs
    (``celery status`` says so) and consumes again once it ended."""
    settings = celery_settings(settings, "redis", queue_prefix).with_overrides(
        {"celery": {"worker_memory_limit": "1MiB"}}
    )
    release = tmp_path / "release"
    write_dag(settings, "hog.py", HOG.format(release=str(release)))
    worker = Worker(settings, tmp_path / "w.log", ["-c", "2", "-n", f"{queue_prefix}@%h"])
    workers.append(worker)
    worker.wait_ready()
    parse_and_trigger(settings, db, "hog")
    seen: dict[str, str] = {}

    def each_loop(_now: datetime) -> None:
        if release.exists():
            return
        if "taking no new try" in worker.text():
            seen["paused"] = _status(settings)
            release.touch()

    assert run_scheduler_until(
        settings, db, lambda: set(run_states(db).values()) == {"success"}, each_loop=each_loop, timeout=60
    ), run_states(db)
    paused = seen["paused"]
    assert "PAUSED" in paused and f"{queue_prefix}-default (not consuming)" in paused, paused
    give_up = time.monotonic() + 30
    while "taking tries again" not in worker.text():  # the next check after the try ended
        assert time.monotonic() < give_up, worker.text()
        time.sleep(0.1)
    resumed = _status(settings)
    assert "PAUSED" not in resumed and "not consuming" not in resumed, resumed
    assert "0/2" in resumed
    with db.session() as session:
        assert [t.state for t in session.scalars(select(TaskTry))] == ["success"]
        assert session.scalars(select(TaskInstance.state)).all() == ["success"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_flower_lists_the_workers(settings: Settings, tmp_path: Path, queue_prefix: str, workers: list[Worker]) -> None:
    """``headrace celery flower`` serves Flower on headrace's Celery app; its API lists the worker."""
    settings = celery_settings(settings, "redis", queue_prefix)
    name = f"{queue_prefix}@{socket.gethostname()}"
    worker = Worker(settings, tmp_path / "w.log", ["-c", "4", "-n", name])
    workers.append(worker)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(settings.to_env(), FLOWER_UNAUTHENTICATED_API="true")
    with (tmp_path / "flower.log").open("wb") as out:
        flower = subprocess.Popen(
            [sys.executable, "-m", "headrace", "celery", "flower", f"--port={port}", "--address=127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        worker.wait_ready()
        give_up = time.monotonic() + 30
        workers_seen: dict[str, object] = {}
        while name not in workers_seen:
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()
            assert time.monotonic() < give_up, (workers_seen, (tmp_path / "flower.log").read_text())
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/workers", params={"refresh": "1"}, timeout=10)
                if answer.status_code == 200:
                    workers_seen = answer.json()
            except httpx.TransportError:  # not listening yet
                pass
            time.sleep(0.2)
        info = workers_seen[name]
        assert isinstance(info, dict)
        assert [q["name"] for q in info["active_queues"]] == [f"{queue_prefix}-default"]
        assert "headrace.run_try" in info["registered"]
    finally:
        flower.terminate()
        try:
            flower.wait(timeout=10)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_try_the_worker_cannot_start_is_requeued_not_acknowledged(settings: Settings, queue_prefix: str) -> None:
    """When the worker cannot start a try (``ExecutorError``: here no open slot), its message goes back to the
    queue (Celery would acknowledge a failed task): a real worker on the real Redis receives it again."""
    settings = celery_settings(settings, "redis", queue_prefix)
    runner = TryRunner(settings, 1)
    runner._executor.parallelism = 0  # every try is refused with "no open slot", as when the fork server won't start
    app = worker_app(settings, runner)
    received: list[str] = []

    def on_received(request: Any, **_kwargs: Any) -> None:
        received.append(request.id)

    task_received.connect(on_received, weak=False)
    request = TryRequest(ti_id=7, dag_id="d", run_id="r", task_id="t", try_number=1, fileloc="/x.py")
    # Celery's worker set-up configures the root logger of this (pytest's) process: level ERROR, its own
    # handlers. Put it back after, or later tests' log capture in this process sees nothing.
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    try:
        with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=30):
            send_try(app, settings, request)
            give_up = time.monotonic() + 30
            while received.count(task_id(request)) < 2:
                assert time.monotonic() < give_up, received  # acknowledged: delivered once, then gone
                time.sleep(0.1)
    finally:
        task_received.disconnect(on_received)
        runner.close()
        app.close()
        root.setLevel(root_level)
        root.handlers[:] = root_handlers
