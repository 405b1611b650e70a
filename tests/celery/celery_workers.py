"""Real Celery workers (``headrace celery worker`` subprocesses) on the real Redis and RabbitMQ of the machine.

(Not a conftest and no package: a ``tests/celery`` package would shadow Celery itself on ``sys.path``.)

Every test gets its own queue names (a random prefix), so parallel test workers sharing a broker never take
each other's messages; RabbitMQ queues are deleted at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from headrace.config import Settings

BROKERS = {"redis": "redis://127.0.0.1:6379/0", "amqp": "amqp://guest:guest@127.0.0.1:5672//"}

FAST = {
    "scheduler": {"loop_interval": 0.2, "dag_dir_list_interval": 0.5, "heartbeat_interval": 0.5},
    "core": {"executor": "celery", "parallelism": 8},
    "executor": {"forkserver_idle_timeout": 1},
}
"""Overrides that keep these tests quick (the broker and queue names are the test's own)."""


class Worker:
    """A ``headrace celery worker`` subprocess writing its log to a file."""

    def __init__(self, settings: Settings, log: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = log
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
        environ.update(settings.to_env())
        environ.update(env or {})
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "headrace", "celery", "worker", *args],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def text(self) -> str:
        """Everything the worker logged so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        """Return once the worker said it is ready (consuming); fail if it exited or ``timeout`` passed."""
        give_up = time.monotonic() + timeout
        while " ready." not in self.text():
            assert self.proc.poll() is None, f"worker exited ({self.proc.returncode}):\n{self.text()}"
            assert time.monotonic() < give_up, f"worker not ready after {timeout} s:\n{self.text()}"
            time.sleep(0.05)

    def processes(self) -> list[psutil.Process]:
        """The worker process and all its descendants alive now."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it is still there after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def celery_settings(settings: Settings, broker: str, queue_prefix: str) -> Settings:
    """``settings`` with the celery executor on ``broker`` (a key of BROKERS) and a default queue of the test's own."""
    return settings.with_overrides(
        {**FAST, "celery": {"broker_url": BROKERS[broker]}, "operators": {"default_queue": f"{queue_prefix}-default"}}
    )


def delete_queues(settings: Settings, names: list[str]) -> None:
    """Delete the test's queues on the broker: RabbitMQ keeps durable queues after their consumers leave; on Redis
    a queue is a list (messages nobody took) beside kombu's binding sets."""
    broker = settings.get_str("celery", "broker_url")
    if broker.startswith("redis://"):
        import redis

        client = redis.Redis.from_url(broker)
        try:
            keys = [key for name in names for key in client.scan_iter(match=f"*{name}")]
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        return
    from headrace.executors.celery_app import make_app

    app = make_app(settings)
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            for name in names:
                try:
                    channel.queue_delete(name)
                except Exception:  # noqa: BLE001 - already gone
                    channel = conn.channel()
    finally:
        app.close()


def forget_redis_keys(prefix: str) -> None:
    """Delete every key of the test's queues on the Redis broker (queues, kombu's binding sets)."""
    import redis

    client = redis.Redis.from_url(BROKERS["redis"])
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
