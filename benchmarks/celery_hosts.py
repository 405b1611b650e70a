"""W1 and W2 on the Celery executor with workers on two hosts, on Redis and on RabbitMQ, beside the local executor.

    sudo python benchmarks/celery_hosts.py [--only local,redis,amqp] [--workloads W1,W2] [--concurrency 4]

W1 (200 no-op tasks in one run) and W2 (a chain of 50) are ``benchmarks/run.py``'s
DAGs and figures: tries per second (first try start → last try end), CPU seconds
per try (every headrace process: the scheduler's tree and each worker's, with
the processes they reaped), and milliseconds per dependency hop (end of task i →
start of task i+1; mean and p95).

Every workload runs on a fresh PostgreSQL database on the machine's server
(127.0.0.1:5432, dropped afterwards) with ``core.parallelism`` 8 and the
scheduler's defaults, a scheduler in this host, and:

* ``local``: the local executor (tries forked on this host);
* ``redis`` / ``amqp``: the Celery executor on the machine's Redis
  (127.0.0.1:6379) or RabbitMQ (127.0.0.1:5672), with a ``headrace celery
  worker -c <concurrency>`` (4: 8 slots in all) on each of two test hosts
  (:mod:`tests.hosts`, network namespaces reaching PostgreSQL and the broker
  through a veth and a ``socat`` forwarder), on a queue of the run's own.

Needs root (``ip netns``) and ``socat``. Figures on the 2-CPU development VM
(Python 3.11, PostgreSQL 15, Celery 5; shared with other test runs, load
average about 10, so ±30 %):

    local (this host)                  W1 200 tries on 1 host(s): 22.4 tries/s, 0.036 CPU s/try
    local (this host)                  W2 50 tasks: 80.9 ms/hop mean, 117.3 ms p95, 0.050 CPU s/try
    celery/redis (2 hosts x 4 slots)   W1 200 tries on 2 host(s): 6.8 tries/s, 0.045 CPU s/try
    celery/redis (2 hosts x 4 slots)   W2 50 tasks: 933.2 ms/hop mean, 1036.1 ms p95, 0.087 CPU s/try
    celery/amqp (2 hosts x 4 slots)    W1 200 tries on 2 host(s): 6.7 tries/s, 0.042 CPU s/try
    celery/amqp (2 hosts x 4 slots)    W2 50 tasks: 1104.2 ms/hop mean, 1499.5 ms p95, 0.090 CPU s/try

The Celery executor learns that a try ended from the database at most once a
second (``SYNC_INTERVAL``): a hop costs about a second, and each slot waits
about that long between tries (docs/celery.md, "Workers on two hosts").
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import W1_DAG, W2_DAG, _tree_cpu  # noqa: E402

from tests.hosts import Hosts, unavailable  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
BROKERS = {"redis": "redis://127.0.0.1:6379/0", "amqp": "amqp://guest:guest@127.0.0.1:5672//"}
WORKLOADS = {"W1": ("bench_fanout", W1_DAG), "W2": ("bench_chain", W2_DAG)}


def _headrace(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "headrace", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"headrace {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _wait(what: str, condition: object, timeout: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{what}: a process exited ({proc.args})")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def _run_state(dsn: str, dag_id: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state FROM dag_run WHERE dag_id = %s", (dag_id,)).fetchone()
    return None if row is None else str(row[0])


def _parsed(dsn: str, dag_id: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT 1 FROM dag WHERE dag_id = %s", (dag_id,)).fetchone() is not None


def _forget_queue(broker: str, queue: str) -> None:
    """Delete the run's queue from the broker (its Redis keys, or the RabbitMQ queue)."""
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(BROKERS["redis"])
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
        client.close()
        return
    from kombu import Connection

    with Connection(BROKERS["amqp"]) as conn:
        conn.default_channel.queue_delete(queue)


def run_one(executor: str, workload: str, concurrency: int) -> dict[str, float]:
    """Run ``workload`` once on ``executor`` ("local", "redis" or "amqp"); return its figures."""
    dag_id, source = WORKLOADS[workload]
    name = f"hrbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{SERVER}/{name}"
    queue = f"{name}-default"
    procs: list[subprocess.Popen[bytes]] = []
    hosts: Hosts | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
            home = Path(tmp)
            (home / "dags").mkdir()
            (home / "dags" / f"{dag_id}.py").write_text(textwrap.dedent(source))
            env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
            env.update(
                HEADRACE_HOME=str(home),
                HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",
                HEADRACE__DATABASE__URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                HEADRACE__CORE__PARALLELISM="8",
                HEADRACE__CORE__EXECUTOR="local" if executor == "local" else "celery",
                HEADRACE__METRICS__SCHEDULER_PORT="0",
            )
            if executor != "local":
                env.update(HEADRACE__CELERY__BROKER_URL=BROKERS[executor], HEADRACE__CELERY__DEFAULT_QUEUE=queue)
            _headrace(env, "db", "migrate")
            if executor != "local":
                broker_port = 6379 if executor == "redis" else 5672
                hosts = Hosts(["bench-a", "bench-b"], ports=[5432, broker_port])
                for host in hosts:
                    host_env = {
                        **env,
                        "HEADRACE__DATABASE__URL": host.url(env["HEADRACE__DATABASE__URL"]),
                        "HEADRACE__CELERY__BROKER_URL": host.url(BROKERS[executor]),
                    }
                    log = home / f"worker-{host.name}.log"
                    argv = [sys.executable, "-m", "headrace", "celery", "worker", "-c", str(concurrency)]
                    procs.append(host.popen(argv, host_env, log))
                    _wait(f"worker on {host.name} ready", lambda log=log: " ready." in log.read_text(), 60, procs)
            with (home / "scheduler.log").open("wb") as out:
                scheduler = subprocess.Popen(
                    [sys.executable, "-m", "headrace", "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            procs.append(scheduler)
            _wait("DAG parsed", lambda: _parsed(dsn, dag_id), 60, procs)
            before = sum(_tree_cpu(p.pid) for p in procs)
            _headrace(env, "dags", "trigger", dag_id)
            _wait("run finished", lambda: _run_state(dsn, dag_id) in ("success", "failed"), 900, procs)
            if _run_state(dsn, dag_id) != "success":
                raise SystemExit(f"{executor} {workload}: the run failed; see {home}")
            time.sleep(0.5)  # the last supervisors exit and are reaped
            cpu = sum(_tree_cpu(p.pid) for p in procs) - before
            with psycopg.connect(dsn) as conn:
                rows = conn.execute(
                    "SELECT task_id, hostname, extract(epoch FROM start_date), extract(epoch FROM end_date) "
                    "FROM task_try WHERE dag_id = %s",
                    (dag_id,),
                ).fetchall()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if hosts is not None:
            hosts.close()
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if executor != "local":
            _forget_queue(executor, queue)
    tries = sorted((str(t), str(h), float(s), float(e)) for t, h, s, e in rows)
    figures: dict[str, float] = {"tries": len(tries), "hosts": len({h for _, h, _, _ in tries})}
    figures["cpu_per_try"] = cpu / len(tries)
    if workload == "W1":
        span = max(e for *_, e in tries) - min(s for *_, s, _ in tries)
        figures["tries_per_second"] = len(tries) / span
    else:
        hops = [(tries[i + 1][2] - tries[i][3]) * 1000 for i in range(len(tries) - 1)]
        figures["hop_mean_ms"] = statistics.fmean(hops)
        figures["hop_p95_ms"] = sorted(hops)[int(len(hops) * 0.95) - 1]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="local,redis,amqp", help="comma-separated: local, redis, amqp")
    parser.add_argument("--workloads", default="W1,W2", help="comma-separated: W1, W2")
    parser.add_argument("--concurrency", type=int, default=4, help="slots of each of the two workers")
    args = parser.parse_args()
    executors = [e.strip() for e in args.only.split(",") if e.strip()]
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for executor in executors:
        if executor not in ("local", *BROKERS):
            parser.error(f"--only: unknown executor {executor!r} (local, redis, amqp)")
    for workload in workloads:
        if workload not in WORKLOADS:
            parser.error(f"--workloads: unknown workload {workload!r} (W1, W2)")
    if any(e != "local" for e in executors) and (why := unavailable()):
        raise SystemExit(f"cannot make the worker hosts: {why}")
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, PostgreSQL, parallelism 8")
    for executor in executors:
        where = "this host" if executor == "local" else f"2 hosts x {args.concurrency} slots"
        label = f"{'local' if executor == 'local' else 'celery/' + executor} ({where})"
        for workload in workloads:
            f = run_one(executor, workload, args.concurrency)
            if workload == "W1":
                print(
                    f"{label:34} W1 {f['tries']:.0f} tries on {f['hosts']:.0f} host(s): "
                    f"{f['tries_per_second']:.1f} tries/s, {f['cpu_per_try']:.3f} CPU s/try"
                )
            else:
                print(
                    f"{label:34} W2 {f['tries']:.0f} tasks: {f['hop_mean_ms']:.1f} ms/hop mean, "
                    f"{f['hop_p95_ms']:.1f} ms p95, {f['cpu_per_try']:.3f} CPU s/try"
                )


if __name__ == "__main__":
    main()
