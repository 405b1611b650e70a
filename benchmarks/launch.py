"""Try-launch benchmark: N no-op tries at parallelism 8 through the LocalExecutor.

    python benchmarks/launch.py [--db sqlite|postgresql] [--tries N] [--parallelism P] [--task-seconds S]

Rows are made directly (no scheduler): one DAG version with N no-op tasks, one
running DAG run, every TI ``queued`` for try 1. The benchmark process plays the
scheduler's executor side: it keeps ``parallelism`` tries in flight through
``LocalExecutor.queue``/``sync`` and stamps each ``queue()`` call; each task
stamps ``time.time()`` into a file the moment its code runs.

``--task-seconds S`` makes each task sleep S seconds after its mark (default
0: a no-op), so that the supervisor's sampling of a running try
(``executor.memory_poll_interval``) shows in its CPU per try.

Prints: queue()→task-start latency (median, p90), tries/s (first queue → last
supervisor exit), and CPU per try split by role:

* fork server: its own CPU (psutil ``cpu_times`` user+system);
* task process: ``task_try.cpu_seconds`` (the supervisor's rusage of its task);
* supervisor: fork server's waited-for-children CPU minus the task processes';
* executor (this process): ``getrusage(RUSAGE_SELF)``.

and the minor page faults per try of the fork server's waited-for children
(supervisors and their task processes: ``cminflt`` of ``/proc/<server>/stat``),
which copy-on-write after each fork makes a large part of their CPU.

A warm-up batch of ``parallelism`` tries (not counted) starts the fork server
first, so the figures are steady state. PostgreSQL: a scratch database
``headrace_bench_<pid>`` on ``postgresql+psycopg://postgres@127.0.0.1:5432``,
created and dropped by this script.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import func
from sqlalchemy import select as sql_select

from headrace.config import load_settings
from headrace.dagfiles.loader import load_dags
from headrace.dagfiles.serialization import dag_hash, serialize_dag
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagRun, DagVersion, TaskInstance, TaskTry
from headrace.executors.local import LocalExecutor
from headrace.supervisor.request import TryRequest

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"

DAG_TEMPLATE = """
import os, time
from datetime import datetime
from headrace import DAG
from headrace.operators import PythonOperator

MARKS = {marks!r}

def noop(ti):
    with open(os.path.join(MARKS, ti.task_id), "w") as f:
        f.write(repr(time.time()))
    time.sleep({seconds!r})

with DAG("bench_launch", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=100000):
    for i in range({n}):
        PythonOperator(task_id=f"t{{i:04d}}", python_callable=noop)
"""


def _create_rows(db: Database, dag_file: Path, n: int) -> list[TryRequest]:
    dag = next(d for d in load_dags(dag_file) if d.dag_id == "bench_launch")
    serialized = serialize_dag(dag)
    now = datetime.now(UTC)
    with db.session() as session:
        version = DagVersion(
            dag_id=dag.dag_id, version_hash=dag_hash(serialized), serialized=serialized, created_at=now
        )
        session.add(version)
        session.flush()
        run = DagRun(
            dag_id=dag.dag_id,
            run_id="manual__bench",
            run_type="manual",
            logical_date=now,
            data_interval_start=now,
            data_interval_end=now,
            state="running",
            conf={},
            dag_version_id=version.id,
            queued_at=now,
            start_date=now,
        )
        session.add(run)
        session.flush()
        tis = []
        for task in dag.tasks:
            ti = TaskInstance(
                dag_run_id=run.id,
                dag_id=dag.dag_id,
                run_id=run.run_id,
                task_id=task.task_id,
                state="queued",
                try_number=1,
                max_tries=task.retries,
                queued_at=now,
                priority_weight=task.priority_weight,
                pool=task.pool,
                queue=task.queue,
            )
            session.add(ti)
            tis.append(ti)
        session.flush()
        return [
            TryRequest(
                ti_id=ti.id,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                try_number=1,
                fileloc=str(dag_file),
                queue=ti.queue,
                priority_weight=ti.priority_weight,
            )
            for ti in tis
        ]


def _run_batch(executor: LocalExecutor, requests: list[TryRequest]) -> tuple[dict[str, float], float, float]:
    """Run ``requests`` keeping the executor full; return (queue time by task_id, first queue, last exit)."""
    pending = list(requests)
    queued_at: dict[str, float] = {}
    by_key = {r.key: r for r in requests}
    done = 0
    first = time.time()
    last = first
    while done < len(requests):
        while pending and executor.open_slots() > 0:
            req = pending.pop(0)
            queued_at[req.task_id] = time.time()
            executor.queue(req)
        fd = executor.fileno()
        if fd is not None:
            select.select([fd], [], [], 0.5)
        for event in executor.sync():
            if (event.ti_id, event.try_number) in by_key:
                done += 1
                last = time.time()
                if event.exit_code != 0:
                    print(f"warning: try {event.ti_id} exit code {event.exit_code}", file=sys.stderr)
    return queued_at, first, last


def _cpu(proc: psutil.Process) -> tuple[float, float]:
    t = proc.cpu_times()
    return t.user + t.system, t.children_user + t.children_system


def _child_faults(pid: int) -> int:
    """Minor page faults of the waited-for children of ``pid`` (``cminflt`` in ``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rfind(b")") + 2 :].split()[8])


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench(url: str, home: Path, n: int, parallelism: int, task_seconds: float = 0.0) -> None:
    db = Database(url)
    migrate(db)
    marks = home / "marks"
    marks.mkdir(parents=True)
    dags = home / "dags"
    dags.mkdir()
    dag_file = dags / "bench_launch.py"
    dag_file.write_text(DAG_TEMPLATE.format(marks=str(marks), n=n + parallelism, seconds=task_seconds))
    requests = _create_rows(db, dag_file, n + parallelism)
    environ = {"HEADRACE_HOME": str(home), "HEADRACE__DATABASE__URL": url}
    environ.update({k: v for k, v in os.environ.items() if k.startswith("HEADRACE__") and k not in environ})
    settings = load_settings(environ).with_overrides(
        {"core": {"parallelism": parallelism, "executor": "local"}, "executor": {"forkserver_idle_timeout": 600}}
    )
    executor = LocalExecutor(settings)
    executor.start()
    warm, measured = requests[:parallelism], requests[parallelism:]
    _run_batch(executor, warm)
    assert executor.server_pid is not None
    server = psutil.Process(executor.server_pid)
    server_before = _cpu(server)
    faults_before = _child_faults(server.pid)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    queued_at, first, last = _run_batch(executor, measured)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    server_after = _cpu(server)
    faults = _child_faults(server.pid) - faults_before
    server_pid = executor.server_pid
    executor.terminate()

    latencies = []
    for task_id, t0 in queued_at.items():
        mark = marks / task_id
        if mark.exists():
            latencies.append((float(mark.read_text()) - t0) * 1000)
    measured_ids = [r.ti_id for r in measured]
    with db.session() as session:
        task_cpu = (
            session.scalar(sql_select(func.sum(TaskTry.cpu_seconds)).where(TaskTry.task_instance_id.in_(measured_ids)))
            or 0.0
        )
        states = session.execute(
            sql_select(TaskTry.state, func.count())
            .where(TaskTry.task_instance_id.in_(measured_ids))
            .group_by(TaskTry.state)
        ).all()
    db.dispose()
    server_self = server_after[0] - server_before[0]
    children = server_after[1] - server_before[1]
    supervisor = children - task_cpu
    me = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    ms = 1000.0 / n
    print(
        f"db={'sqlite' if url.startswith('sqlite') else 'postgresql'} tries={n} parallelism={parallelism} "
        f"task_seconds={task_seconds:g} "
        f"fork server pid {server_pid}; outcomes {dict(states)}"
    )
    print(
        f"queue->task-start latency: median {statistics.median(latencies):.1f} ms, "
        f"p90 {_pct(latencies, 0.9):.1f} ms (n={len(latencies)})"
    )
    print(f"throughput: {n / (last - first):.1f} tries/s ({last - first:.2f} s wall)")
    print(
        f"CPU per try: fork server {server_self * ms:.1f} ms, supervisor {supervisor * ms:.1f} ms, "
        f"task process {task_cpu * ms:.1f} ms, executor (this process) {me * ms:.1f} ms; "
        f"total {(server_self + children + me) * ms:.1f} ms"
    )
    print(f"page faults per try (supervisor + task process): {faults / n:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--tries", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--task-seconds", type=float, default=0.0, help="each task sleeps this long (seconds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="headrace-launch-") as tmp:
        home = Path(tmp)
        if args.db == "sqlite":
            bench(f"sqlite:///{home / 'headrace.db'}", home, args.tries, args.parallelism, args.task_seconds)
            return 0
        import psycopg

        name = f"headrace_bench_{os.getpid()}"
        admin = PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            bench(f"{PG_SERVER}/{name}", home, args.tries, args.parallelism, args.task_seconds)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
