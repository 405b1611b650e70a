"""Does a finished try cost more in a bigger DAG run? Throughput and scheduler loop time by run size.

``python benchmarks/run_size.py`` runs, under ``headrace scheduler`` (LocalExecutor, ``parallelism`` 8, a
fresh ``HEADRACE_HOME``), one DAG run of N independent no-op tasks for each N in ``--tasks`` (default
200,2000,10000) and prints, per N:

* ``tries_per_second``: tries ended per second over a window of ``--window`` tries (default 600) taken
  after the first 50 ended, so start-up and the run's tail are left out and the run is still big while
  it is measured (a 10,000-task run is never waited out);
* ``loop_ms_p50`` / ``loop_ms_p95`` / ``loop_ms_max``: the scheduler loop's own time (its steps, not its
  wait), received as the ``scheduler.loop_duration`` StatsD timings the scheduler sends to a UDP socket
  this script listens on, for the loops of that window.

``--mapped`` makes each run one mapped task of N indices instead (``core.max_map_length`` raised to N).
``--database-url postgresql+psycopg://postgres@127.0.0.1:5432`` runs on PostgreSQL (a fresh database per
N, dropped afterwards) instead of the embedded SQLite. ``--profile /tmp/size`` runs the scheduler under cProfile
and writes ``/tmp/size.<N>.prof`` (read with ``python -m pstats``); its figures are then not comparable.

The issue's target (scale-out issue, "Scheduling cost that does not grow with the run"): a 10,000-task
run within 20 % of the 200-task throughput, with the loop p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _env, _headrace  # noqa: E402

WARMUP_TRIES = 50

TASKS_DAG = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator, PythonOperator

def noop() -> None:
    return None

with DAG("bench_size", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=100000):
    for i in range({n}):
        PythonOperator(task_id=f"noop_{{i:05d}}", python_callable=noop)
"""

MAPPED_DAG = """
from datetime import datetime
from headrace import DAG, task

with DAG("bench_size", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=100000):
    @task
    def noop(x: int) -> None:
        return None

    noop.expand(x=list(range({n})))
"""


class LoopTimes:
    """Collects ``<prefix>.scheduler.loop_duration`` StatsD timings (ms) sent to a UDP port on 127.0.0.1."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.samples: list[tuple[float, float]] = []  # (monotonic time received, ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            for line in data.decode(errors="replace").splitlines():
                name, _, rest = line.partition(":")
                if name.endswith("scheduler.loop_duration"):
                    self.samples.append((time.monotonic(), float(rest.split("|")[0])))

    def between(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in self.samples if start <= at <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _ended(engine_url: str) -> int:
    engine = create_engine(engine_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM task_try WHERE end_date IS NOT NULL")).scalar_one())
    finally:
        engine.dispose()


def _database(base_url: str | None, home: Path, n: int) -> tuple[str, str | None]:
    if not base_url:
        return f"sqlite:///{home / 'headrace.db'}", None
    import psycopg

    name = f"headrace_bench_size_{os.getpid()}_{n}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url.rstrip('/')}/{name}", name


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(
    n: int, *, mapped: bool, window: int, base_url: str | None, timeout: float, profile: Path | None = None
) -> dict[str, object]:
    """Run one DAG run of ``n`` tasks (or ``n`` map indices) and measure ``window`` tries; see the module doc."""
    loops = LoopTimes()
    with tempfile.TemporaryDirectory(prefix="headrace-size-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_size.py").write_text(textwrap.dedent((MAPPED_DAG if mapped else TASKS_DAG).format(n=n)))
        url, pg_name = _database(base_url, home, n)
        env = _env(
            home,
            HEADRACE__CORE__PARALLELISM="8",
            HEADRACE__CORE__EXECUTOR="local",
            HEADRACE__CORE__MAX_MAP_LENGTH=str(max(1024, n)),
            HEADRACE__DATABASE__URL=url,
            HEADRACE__METRICS__STATSD_HOST="127.0.0.1",
            HEADRACE__METRICS__STATSD_PORT=str(loops.port),
        )
        try:
            _headrace(env, "db", "migrate")
            profiler = ["-m", "cProfile", "-o", str(profile.with_suffix(f".{n}.prof"))] if profile else []
            sched = subprocess.Popen(
                [sys.executable, *profiler, "-m", "headrace", "scheduler"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(home / "scheduler.err", "w"),  # noqa: SIM115 - lives as long as the process
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 120
                while "bench_size" not in _headrace(env, "dags", "list") and time.monotonic() < deadline:
                    time.sleep(0.3)
                _headrace(env, "dags", "trigger", "bench_size")
                target = min(WARMUP_TRIES + window, n)
                start_at = start_count = None
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    count = _ended(url)
                    if start_at is None and count >= WARMUP_TRIES:
                        start_at, start_count = time.monotonic(), count
                    if count >= target:
                        break
                    time.sleep(0.1)
                else:
                    raise SystemExit(f"n={n}: {target} tries did not end within {timeout} s")
                end_at, end_count = time.monotonic(), count
            finally:
                os.killpg(sched.pid, signal.SIGTERM)
                sched.wait(timeout=60)
            assert start_at is not None and start_count is not None
            ms = sorted(loops.between(start_at, end_at))
            return {
                "tasks": n,
                "mapped": mapped,
                "tries_measured": end_count - start_count,
                "tries_per_second": round((end_count - start_count) / (end_at - start_at), 1),
                "loops": len(ms),
                "loop_ms_p50": round(statistics.median(ms), 1) if ms else None,
                "loop_ms_p95": round(ms[int(len(ms) * 0.95) - 1], 1) if ms else None,
                "loop_ms_max": round(ms[-1], 1) if ms else None,
            }
        finally:
            loops.close()
            if pg_name:
                time.sleep(1)  # let the killed supervisors' connections go
                _drop(pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="200,2000,10000", help="comma-separated run sizes")
    parser.add_argument("--window", type=int, default=600, help="tries measured per size")
    parser.add_argument("--mapped", action="store_true", help="one mapped task of N indices")
    parser.add_argument("--database-url", default=None, help="PostgreSQL server URL (a database is created)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per size")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the scheduler under cProfile, writing PROFILE.<N>.prof per size (figures are then slower)",
    )
    args = parser.parse_args()
    results = []
    for n in (int(x) for x in args.tasks.split(",")):
        result = measure(
            n,
            mapped=args.mapped,
            window=args.window,
            base_url=args.database_url,
            timeout=args.timeout,
            profile=args.profile,
        )
        results.append(result)
        if not args.json:
            print(json.dumps(result), flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
