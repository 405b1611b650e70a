"""Issue 10: the Celery executor with workers on two hosts survives a lost host and restarts of its services.

Each test runs a real scheduler (subprocess, this host), a PostgreSQL cluster,
a broker and two ``headrace celery worker`` processes on two test hosts
(:mod:`tests.hosts`: network namespaces named ``host-a`` and ``host-b``
reaching PostgreSQL and the broker over a veth). PostgreSQL is the fault tests'
private cluster (``pg_cluster``); the brokers are private too
(:mod:`tests.faults.brokers`), so restarting them disturbs no other test.

A DAG of tasks that each write ``{task_id}.{try_number}.json`` = the hostname
and pid their code sees, then sleep, runs while a fault strikes. Each test ends
with every DAG run finished and the tries table consistent
(:func:`check_tries`): one success per task instance, no two tries of one task
instance overlapping in time, every try's host one of the worker hosts and, for
every try whose code started, its recorded host and pid those the code saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings, load_settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry
from headrace.scheduler.runs import trigger_dag
from tests.faults.brokers import RabbitNode, RedisServer
from tests.faults.pgcluster import PgCluster
from tests.faults.scenario import FAULT, finished, run_states, start_scheduler, stop_scheduler, try_rows
from tests.hosts import Hosts, unavailable
from tests.integration.helpers import write_dag

HOSTS = ("host-a", "host-b")

DROPPED = ("was not queued for this delivery", "is already running on this worker")
"""What a worker logs when it drops a delivery of a try that runs already (or ended)."""

WHY_NOT = unavailable()
pytestmark = [
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no test hosts: {WHY_NOT}"),
    pytest.mark.timeout(240),
]

WORK = """
import json, os, socket, time
from datetime import timedelta
from pathlib import Path
from headrace import DAG, chain
from headrace.operators import PythonOperator

OUT = Path({out!r})

def work(ti, seconds):
    seen = {{"host": socket.gethostname(), "pid": os.getpid()}}
    (OUT / f"{{ti.task_id}}.{{ti.try_number}}.json").write_text(json.dumps(seen))
    time.sleep(seconds)

with DAG("work", schedule=None, default_args={{"retries": 1, "retry_delay": timedelta(seconds=0)}}):
    fan = [
        PythonOperator(task_id=f"fan{{i}}", python_callable=work, op_kwargs={{"seconds": {seconds}}})
        for i in range({width})
    ]
    tail = [
        PythonOperator(task_id=f"tail{{i}}", python_callable=work, op_kwargs={{"seconds": 0.3}})
        for i in range({depth})
    ]
    fan >> tail[0]
    chain(*tail)
"""


class Cluster:
    """A scheduler here and a ``headrace celery worker`` on each of two test hosts, on one database and broker."""

    def __init__(self, settings: Settings, db: Database, hosts: Hosts, logs: Path) -> None:
        self.settings, self.db, self.hosts, self.logs = settings, db, hosts, logs
        self.out = logs / "out"
        self.out.mkdir()
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.scheduler: subprocess.Popen[bytes] | None = None

    def worker_log(self, host: str) -> Path:
        return self.logs / f"worker-{host}.log"

    def start_workers(self, concurrency: int = 3) -> None:
        """Start a worker on each host (its DB and broker URLs through the host's veth); wait until ready."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
        for host in self.hosts:
            env = {
                **base,
                **self.settings.to_env(),
                "HEADRACE__DATABASE__URL": host.url(self.settings.database_url),
                "HEADRACE__CELERY__BROKER_URL": host.url(self.settings.get_str("celery", "broker_url")),
            }
            argv = [sys.executable, "-m", "headrace", "celery", "worker", "-c", str(concurrency)]
            self.workers[host.name] = host.popen(argv, env, self.worker_log(host.name))
        deadline = time.monotonic() + 60
        for name, proc in self.workers.items():
            while " ready." not in self.worker_log(name).read_text(errors="replace"):
                assert proc.poll() is None, f"worker on {name} exited:\n{self.worker_log(name).read_text()}"
                assert time.monotonic() < deadline, f"worker on {name} not ready:\n{self.worker_log(name).read_text()}"
                time.sleep(0.05)

    def start(self, *, width: int, seconds: float, depth: int = 2) -> None:
        """Write and parse the DAG, trigger one run and start the scheduler."""
        write_dag(self.settings, "work.py", WORK.format(out=str(self.out), width=width, seconds=seconds, depth=depth))
        assert DagProcessor(self.settings, self.db).refresh(datetime.now(UTC)).errors == 0
        with self.db.session() as session:
            trigger_dag(session, "work", now=datetime.now(UTC))
        self.scheduler = start_scheduler(self.settings, self.logs / "scheduler.log")

    def seen(self) -> dict[tuple[str, int], dict[str, object]]:
        """``(task_id, try_number)`` → the host and pid the try's code saw (tries whose code started)."""
        found = {}
        for path in self.out.glob("*.json"):
            task_id, number, _ = path.name.split(".")
            try:
                found[task_id, int(number)] = json.loads(path.read_text())
            except ValueError:  # being written
                continue
        return found

    def wait(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
        """Wait until ``condition()``; fail with the logs when a process died or ``timeout`` s passed."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.scheduler is None or self.scheduler.poll() is None, f"the scheduler died\n{self.tails()}"
            assert time.monotonic() < deadline, f"{what}: not after {timeout} s; {run_states(self.db)}\n{self.tails()}"
            time.sleep(0.1)

    def running_on(self, host: str) -> list[tuple[str, int]]:
        """The tries whose code started on ``host`` and whose task instance is still running that try."""
        with self.db.session() as session:
            running = {
                (ti.task_id, ti.try_number)
                for ti in session.scalars(select(TaskInstance).where(TaskInstance.state == "running"))
            }
        return [key for key, seen in self.seen().items() if seen["host"] == host and key in running]

    def wait_finished(self, timeout: float = 90) -> None:
        self.wait("every DAG run finished", lambda: finished(self.db), timeout)

    def tails(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.logs.glob("*.log"))
        )

    def stop(self) -> None:
        """Stop the scheduler; kill every process on the hosts (the runs are over, or the test failed)."""
        try:
            if self.scheduler is not None:
                stop_scheduler(self.scheduler, self.logs / "scheduler.log")
                self.scheduler = None
        finally:
            for host in self.hosts:
                host.kill()
            for proc in self.workers.values():
                proc.wait(timeout=10)


def check_tries(cluster: Cluster) -> list[TaskTry]:
    """Every run succeeded and the tries table is consistent (see the module docstring); return the tries."""
    db = cluster.db
    assert set(run_states(db).values()) == {"success"}, f"{run_states(db)}\n{cluster.tails()}"
    with db.session() as session:
        tis = list(session.scalars(select(TaskInstance)))
    tries = try_rows(db)
    seen = cluster.seen()
    by_ti: dict[int, list[TaskTry]] = {}
    for tt in tries:
        by_ti.setdefault(tt.task_instance_id, []).append(tt)
    for ti in tis:
        mine = sorted(by_ti.get(ti.id, []), key=lambda t: t.try_number)
        assert [t.state for t in mine].count("success") == 1, (ti.task_id, [(t.try_number, t.state) for t in mine])
        assert mine[-1].state == "success" and ti.state == "success", ti.task_id
        for before, after in zip(mine, mine[1:], strict=False):
            assert before.end_date is not None and before.end_date <= after.start_date, (
                f"{ti.task_id}: try {before.try_number} ({before.start_date}–{before.end_date}) overlaps "
                f"try {after.try_number} (from {after.start_date})"
            )
    for tt in tries:
        assert tt.hostname in HOSTS, (tt.task_id, tt.try_number, tt.hostname)
        code = seen.get((tt.task_id, tt.try_number))
        if tt.state == "success":
            assert code is not None, f"{tt.task_id} try {tt.try_number} succeeded but its code never ran"
        if code is not None:
            assert (tt.hostname, tt.pid) == (code["host"], code["pid"]), (tt.task_id, tt.try_number, code)
    return tries


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    """A private RabbitMQ node for this module's tests (started once: it takes about 8 s)."""
    node = RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.destroy()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def make_cluster(tmp_path: Path, db_url: str, broker_url: str, pg: PgCluster, broker_port: int) -> Iterator[Cluster]:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    settings = load_settings(
        {
            "HEADRACE_HOME": str(home),
            "HEADRACE__DATABASE__URL": db_url,
            "HEADRACE__METRICS__SCHEDULER_PORT": "0",
            "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        }
    ).with_overrides(
        {
            **FAULT,
            "core": {"executor": "celery", "parallelism": 8},
            "executor": {"forkserver_idle_timeout": 5},
            "scheduler": {
                **FAULT["scheduler"],
                "task_instance_heartbeat_timeout": 5,
                "task_queued_timeout": 8,
            },
            "celery": {"broker_url": broker_url},
        }
    )
    db = Database(db_url)
    with Hosts(HOSTS, ports=[pg.port, broker_port]) as hosts:
        cluster = Cluster(settings, db, hosts, tmp_path)
        try:
            yield cluster
        finally:
            cluster.stop()
            db.dispose()


@pytest.fixture
def redis_cluster(
    tmp_path: Path, private_pg_url: str, pg_cluster: PgCluster, redis_server: RedisServer
) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, private_pg_url, redis_server.url, pg_cluster, redis_server.port)


@pytest.fixture
def rabbit_cluster(tmp_path: Path, private_pg_url: str, pg_cluster: PgCluster, rabbit: RabbitNode) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, private_pg_url, rabbit.url, pg_cluster, rabbit.port)


def test_a_lost_host_mid_try_is_a_zombie_retried_on_the_other(redis_cluster: Cluster) -> None:
    """Every process of host-a (worker, fork server, supervisors, tasks) is SIGKILLed while it runs tries: their
    heartbeats stop, the scheduler ends them as zombies, and their retries run on host-b."""
    cluster = redis_cluster
    cluster.start_workers()
    cluster.start(width=6, seconds=4)
    cluster.wait("tries running on host-a", lambda: bool(cluster.running_on("host-a")))
    lost = cluster.running_on("host-a")
    cluster.hosts["host-a"].kill()
    cluster.wait_finished()
    tries = {(tt.task_id, tt.try_number): tt for tt in check_tries(cluster)}
    for task_id, number in lost:
        dead = tries[task_id, number]
        assert (dead.hostname, dead.state, dead.end_reason) == ("host-a", "up_for_retry", "zombie"), dead.error
        retry = tries[task_id, number + 1]
        assert (retry.hostname, retry.state) == ("host-b", "success")


def test_a_worker_process_killed_mid_try_leaves_its_tries_running(redis_cluster: Cluster) -> None:
    """Only the worker process of host-a is SIGKILLed: its supervisors are detached, so the tries it started
    finish there and are recorded once; the rest of the run goes to host-b."""
    cluster = redis_cluster
    cluster.start_workers()
    cluster.start(width=6, seconds=3)
    cluster.wait("tries running on host-a", lambda: bool(cluster.running_on("host-a")))
    started = cluster.running_on("host-a")
    cluster.workers["host-a"].kill()
    cluster.wait_finished()
    tries = {(tt.task_id, tt.try_number): tt for tt in check_tries(cluster)}
    assert all(number == 1 for _, number in tries), sorted(tries)
    for key in started:
        assert (tries[key].hostname, tries[key].state) == ("host-a", "success"), key


def test_postgresql_restart_mid_run(redis_cluster: Cluster, pg_cluster: PgCluster) -> None:
    """PostgreSQL restarts (fast: every connection dropped) while tries run on both hosts: the scheduler,
    workers and supervisors reconnect, the running tries carry on, and nothing runs twice."""
    cluster = redis_cluster
    cluster.start_workers()
    cluster.start(width=6, seconds=3)
    cluster.wait("tries running on both hosts", lambda: all(cluster.running_on(h) for h in HOSTS))
    running = cluster.running_on("host-a") + cluster.running_on("host-b")
    pg_cluster.restart("fast")
    cluster.wait_finished()
    tries = check_tries(cluster)
    assert all(tt.try_number == 1 for tt in tries), [(t.task_id, t.try_number, t.end_reason) for t in tries]
    assert {(tt.task_id, tt.try_number) for tt in tries} >= set(running)
    assert {tt.hostname for tt in tries} == set(HOSTS)


def test_redis_restart_mid_run(redis_cluster: Cluster, redis_server: RedisServer) -> None:
    """Redis (no persistence) restarts while tries run and others wait in its queue: the running tries
    finish, the lost messages' tries are queued again after ``task_queued_timeout``, the workers reconnect,
    and every task succeeds once."""
    cluster = redis_cluster
    cluster.start_workers(concurrency=2)
    cluster.start(width=8, seconds=3)  # 8 tries for 4 slots: some wait in the broker
    cluster.wait("tries running on both hosts", lambda: all(cluster.running_on(h) for h in HOSTS))
    redis_server.restart()
    cluster.wait_finished()
    tries = check_tries(cluster)
    assert all(tt.try_number == 1 for tt in tries), [(t.task_id, t.try_number, t.end_reason) for t in tries]


def test_rabbitmq_restart_mid_run(rabbit_cluster: Cluster, rabbit: RabbitNode) -> None:
    """RabbitMQ stops and starts its app while tries run: the unacknowledged messages of running tries are
    delivered again and dropped by the claim (on either host), the workers reconnect, every task succeeds once."""
    cluster = rabbit_cluster
    cluster.start_workers(concurrency=2)
    cluster.start(width=8, seconds=3)
    cluster.wait("tries running on both hosts", lambda: all(cluster.running_on(h) for h in HOSTS))
    rabbit.restart_app()
    cluster.wait_finished()
    tries = check_tries(cluster)
    assert all(tt.try_number == 1 for tt in tries), [(t.task_id, t.try_number, t.end_reason) for t in tries]
    logs = "".join(cluster.worker_log(h).read_text(errors="replace") for h in HOSTS)
    assert any(d in logs for d in DROPPED), "no delivery was dropped: the running tries' messages were not redelivered"
