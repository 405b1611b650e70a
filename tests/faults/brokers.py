"""Private, throw-away brokers for fault tests: a Redis server and a RabbitMQ node of the test's own.

Fault tests restart their broker, so, as with PostgreSQL (``pgcluster.py``),
they never touch the machine's shared servers (127.0.0.1:6379, :5672) that
other tests use at the same time. Each listens on 127.0.0.1 only, on a free
port, and keeps its files in a fresh directory under ``/tmp``.

``RedisServer``: ``redis-server`` without persistence (as the machine's), so
a restart loses the messages it held. ``RabbitNode``: a second RabbitMQ node
(``hr<pid>@localhost``, its own data, log and distribution port, no plugins)
beside the machine's; it takes about 8 s to start; ``restart_app()`` is
``rabbitmqctl stop_app`` + ``start_app`` (durable queues and persistent
messages survive; connections are closed).

All timeouts are in seconds.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.pgcluster import free_port


def wait_port(
    port: int, timeout: float, what: str, log: Path | None = None, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until 127.0.0.1:``port`` accepts a TCP connection; raise ``RuntimeError`` (with ``log``'s tail) after
    ``timeout`` s or as soon as ``proc`` (the server) exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
                raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after {timeout} s\n{tail}") from None
            time.sleep(0.05)


class RedisServer:
    """A ``redis-server`` on 127.0.0.1:``port`` (a free one), nothing saved to disk."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="headrace-redis-", dir="/tmp"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its broker URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        """Start it and wait until it listens."""
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_port(self.port, timeout, "redis-server", self.dir / "redis.log", self.proc)

    def stop(self) -> None:
        """SIGTERM and wait (Redis closes every client connection)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        """:meth:`stop`, then :meth:`start` on the same port: every message it held is gone."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop it and delete its directory."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class RabbitNode:
    """A RabbitMQ node ``hr<pid>@localhost`` on 127.0.0.1:``port`` (a free one), user guest/guest."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="headrace-rabbit-", dir="/tmp"))
        self.port = free_port()
        self.node = f"hr{os.getpid()}@localhost"
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        _give_to_rabbitmq(self.dir)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its broker URL (default vhost)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 60) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        with (self.dir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["rabbitmq-server"], env=self.env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT
            )
        wait_port(self.port, timeout, f"RabbitMQ node {self.node}", self.dir / "server.log", self.proc)

    def ctl(self, *args: str, timeout: float = 60) -> None:
        """``rabbitmqctl -n <node> args``; raise ``RuntimeError`` with its output when it fails."""
        result = subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def restart_app(self) -> None:
        """``stop_app`` then ``start_app``: clients are disconnected; durable queues and their messages stay."""
        self.ctl("stop_app")
        self.ctl("start_app")
        wait_port(self.port, 30, f"RabbitMQ node {self.node}")

    def destroy(self) -> None:
        """Stop the node (``rabbitmqctl stop``, else SIGKILL) and delete its directory."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.ctl("stop", timeout=30)
                    self.proc.wait(timeout=30)
                except (RuntimeError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait(timeout=30)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _give_to_rabbitmq(directory: Path) -> None:
    """Run as root, ``rabbitmq-server`` drops to the ``rabbitmq`` OS user: that user must own the node's files."""
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
