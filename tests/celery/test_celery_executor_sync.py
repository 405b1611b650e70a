"""CeleryExecutor against the real broker and DB, without workers: what it publishes, adopts and reports."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
import redis
from celery_workers import celery_settings, delete_queues  # tests/celery is on sys.path (no package)
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import SchedulerJob, TaskInstance
from headrace.db.transitions import requeue_ti
from headrace.exceptions import ExecutorError
from headrace.executors import make_executor
from headrace.executors.celery import CeleryExecutor
from headrace.executors.celery_app import celery_config, celery_queue
from headrace.supervisor.request import TryRequest
from headrace.testing import run_scheduler_until
from tests.integration.helpers import parse_and_trigger, write_dag

TWO = """
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("two", schedule=None):
    EmptyOperator(task_id="a", queue="{heavy}")
    EmptyOperator(task_id="b")
"""


def _messages(queue: str) -> list[dict[str, object]]:
    """The messages waiting in Redis list ``queue`` (kombu's Redis transport: one JSON envelope per item)."""
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        return [json.loads(item) for item in client.lrange(queue, 0, -1)]
    finally:
        client.close()


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_queue_publishes_by_queue_then_a_new_executor_adopts_and_reports_the_end(
    settings: Settings, db: Database
) -> None:
    prefix = f"hrtest-{uuid.uuid4().hex[:10]}"
    settings = celery_settings(settings, "redis", prefix)
    default, heavy = f"{prefix}-default", f"{prefix}-heavy"
    write_dag(settings, "two.py", TWO.format(heavy=heavy))
    try:
        _publish_adopt_and_report(settings, db, default, heavy)
    finally:
        delete_queues(settings, [default, heavy])


def _publish_adopt_and_report(settings: Settings, db: Database, default: str, heavy: str) -> None:
    parse_and_trigger(settings, db, "two")

    def both_queued() -> bool:
        with db.session() as session:
            return session.scalars(select(TaskInstance.state)).all() == ["queued", "queued"]

    assert run_scheduler_until(settings, db, both_queued, timeout=30)
    with db.session() as session:
        tis = {ti.task_id: ti for ti in session.scalars(select(TaskInstance))}
    for task_id, queue in (("a", heavy), ("b", default)):
        (message,) = _messages(queue)
        headers = message["headers"]
        assert isinstance(headers, dict)
        assert headers["task"] == "headrace.run_try"
        assert headers["id"] == tis[task_id].external_executor_id
        assert message["properties"]["body_encoding"] == "base64"  # type: ignore[index]
        args, _kwargs, _embed = json.loads(base64.b64decode(str(message["body"])))  # Celery's message protocol 2
        request = TryRequest.from_json(args[0])
        assert (request.ti_id, request.task_id, request.try_number) == (tis[task_id].id, task_id, 1)

    with db.session() as session:  # the scheduler that queued them has stopped (its job row is ended)
        owner = session.get(SchedulerJob, tis["a"].queued_by_job_id)
        assert owner is not None and owner.ended_at is not None
        owner.ended_at, owner.heartbeat_at = None, datetime.now(UTC)  # as if it still ran (several schedulers)
    alive = make_executor(settings)
    assert isinstance(alive, CeleryExecutor)
    alive.start()  # another live scheduler's tries are not adopted: that scheduler follows them
    assert not alive.has(tis["a"].id, 1) and alive.open_slots() == settings.parallelism
    alive.terminate()
    with db.session() as session:
        owner = session.get(SchedulerJob, tis["a"].queued_by_job_id)
        assert owner is not None
        owner.ended_at = datetime.now(UTC)

    executor = make_executor(settings)  # a restarted scheduler's executor
    assert isinstance(executor, CeleryExecutor)
    executor.start()
    assert executor.has(tis["a"].id, 1) and executor.has(tis["b"].id, 1)
    assert executor.open_slots() == settings.parallelism - 2
    assert executor.sync() == []  # both still queued
    with db.session() as session:
        assert requeue_ti(session, tis["a"].id, 1)  # given back: no longer this try's queueing
        assert session.get(TaskInstance, tis["a"].id).external_executor_id is None  # type: ignore[union-attr]
    executor._next_sync = 0.0  # the next read is due now (it is paced to once a second)
    events = executor.sync()
    assert [(e.ti_id, e.try_number, e.kind, e.exit_code) for e in events] == [(tis["a"].id, 1, "exited", None)]
    assert not executor.has(tis["a"].id, 1) and executor.has(tis["b"].id, 1)
    executor.terminate()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_queue_refuses_a_try_when_the_broker_is_unreachable(settings: Settings) -> None:
    settings = settings.with_overrides(
        {
            "core": {"executor": "celery"},
            "celery": {"broker_url": "redis://127.0.0.1:1/0", "operation_timeout": 0.2},
        }
    )
    executor = CeleryExecutor(settings)
    request = TryRequest(ti_id=1, dag_id="d", run_id="r", task_id="t", try_number=1, fileloc="/x.py")
    with pytest.raises(ExecutorError, match="could not publish try 1 of d.t to redis://127.0.0.1:1/0"):
        executor.queue(request)
    assert not executor.has(1, 1)
    assert executor.open_slots() == 0  # for BROKER_BACKOFF s: the scheduler queues nothing meanwhile
    with pytest.raises(ExecutorError, match="the broker redis://127.0.0.1:1/0 failed just before"):
        executor.queue(request)
    executor._refuse_until = 0.0  # the backoff is over
    assert executor.open_slots() == settings.parallelism
    executor.terminate()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dags_test_runs_on_this_machine_with_the_celery_executor(settings: Settings, db: Database) -> None:
    """``dags test`` runs its tries here, as Airflow's does: no worker and no reachable broker needed."""
    write_dag(settings, "two.py", TWO.format(heavy="heavy"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(
        settings.to_env(),
        HEADRACE__CORE__EXECUTOR="celery",
        HEADRACE__CELERY__BROKER_URL="redis://127.0.0.1:1/0",  # nothing listens there
        COLUMNS="200",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "headrace", "dags", "test", "two"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with db.session() as session:
        assert sorted(session.scalars(select(TaskInstance.state))) == ["success", "success"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_queue_refuses_a_try_when_redis_accepts_but_never_answers(settings: Settings) -> None:
    """A Redis that accepts connections but never replies (stuck, or a half-open connection) must not hold the
    scheduler: the publish gives up after ``celery.operation_timeout`` per attempt and the try is refused."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections complete in the kernel's backlog; nothing ever reads or answers
        port = listener.getsockname()[1]
        settings = settings.with_overrides(
            {
                "core": {"executor": "celery"},
                "celery": {"broker_url": f"redis://127.0.0.1:{port}/0", "operation_timeout": 0.3},
            }
        )
        executor = CeleryExecutor(settings)
        request = TryRequest(ti_id=1, dag_id="d", run_id="r", task_id="t", try_number=1, fileloc="/x.py")
        with pytest.raises(ExecutorError, match=f"could not publish try 1 of d.t to redis://127.0.0.1:{port}/0"):
            executor.queue(request)
        assert not executor.has(1, 1)
        executor.terminate()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_redis_socket_timeouts_default_from_operation_timeout_and_given_options_win(settings: Settings) -> None:
    settings = settings.with_overrides({"celery": {"operation_timeout": 2.5}})
    options = celery_config(settings)["broker_transport_options"]
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 2.5
    assert options["socket_keepalive"] is True
    given = settings.with_overrides({"celery": {"broker_transport_options": '{"socket_timeout": 30}'}})
    assert celery_config(given)["broker_transport_options"]["socket_timeout"] == 30
    amqp = settings.with_overrides({"celery": {"broker_url": "amqp://guest:guest@127.0.0.1:5672//"}})
    assert "socket_timeout" not in celery_config(amqp)["broker_transport_options"]  # not a Redis option


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_broker_transport_options_section_and_operators_default_queue(settings: Settings) -> None:
    """Airflow's [celery_broker_transport_options] (visibility_timeout 86400 by default; a key set there wins over
    the JSON option) and [operators] default_queue (where tries of tasks naming no queue go)."""
    options = celery_config(settings)["broker_transport_options"]
    assert options["visibility_timeout"] == 86400 and "sentinel_kwargs" not in options
    from_json = settings.with_overrides({"celery": {"broker_transport_options": '{"visibility_timeout": 600}'}})
    assert celery_config(from_json)["broker_transport_options"]["visibility_timeout"] == 600
    both = from_json.with_overrides(
        {"celery_broker_transport_options": {"visibility_timeout": 7200, "sentinel_kwargs": '{"password": "p"}'}}
    )
    assert celery_config(both)["broker_transport_options"]["visibility_timeout"] == 7200
    assert celery_config(both)["broker_transport_options"]["sentinel_kwargs"] == {"password": "p"}
    amqp = settings.with_overrides({"celery": {"broker_url": "amqp://guest:guest@127.0.0.1:5672//"}})
    assert "visibility_timeout" not in celery_config(amqp)["broker_transport_options"]  # a Redis/SQS option
    queued = settings.with_overrides({"operators": {"default_queue": "main"}})
    assert celery_config(queued)["task_default_queue"] == "main"
    assert celery_queue(queued, "default") == "main" and celery_queue(queued, "heavy") == "heavy"
