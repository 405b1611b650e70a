"""Scheduling throughput with one scheduler and with two on PostgreSQL: 10 DAGs × 200 no-op tasks.

``python benchmarks/multi_scheduler.py`` runs, for each scheduler count in ``--schedulers`` (default 1,2), a
fresh PostgreSQL database (on ``--database-url``, default the local server), one ``headrace dag-processor``
and that many ``headrace scheduler`` processes (``scheduler.standalone_dag_processor`` on in both cases, so
only the scheduling differs; LocalExecutor, ``core.parallelism`` ``--parallelism``, default 8, over all
schedulers together), triggers one run of each of the 10 DAGs at once and prints, per count:

* ``tries_per_second``: tries ended per second from the ``50``-th ended try to the last (start-up left out);
* ``loop_ms_p50`` / ``loop_ms_p95``: the schedulers' loop times (their steps, not their waits) over that
  window, from the ``scheduler.loop_duration`` StatsD timings all schedulers send to one UDP socket this
  script listens on (as ``benchmarks/run_size.py`` does);
* ``seconds``: wall time from the trigger to the last run's end.

The machine's cores are shared by the schedulers, the supervisors and the tasks: a second scheduler adds
scheduling capacity only where scheduling, not running the tries, is the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _env, _headrace  # noqa: E402
from run_size import WARMUP_TRIES, LoopTimes, _database, _drop  # noqa: E402

DAGS = 10
TASKS = 200

DAG_FILE = """
from datetime import datetime
from headrace import DAG
from headrace.operators import PythonOperator

def noop() -> None:
    return None

for d in range({dags}):
    with DAG(f"bench_multi_{{d:02d}}", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=100000) as dag:
        for i in range({tasks}):
            PythonOperator(task_id=f"noop_{{i:03d}}", python_callable=noop)
    globals()[f"dag_{{d}}"] = dag
"""


def _dags(url: str) -> int:
    """How many of the benchmark's DAGs the DAG processor has stored."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM dag WHERE dag_id LIKE 'bench_multi_%'")).scalar_one())
    finally:
        engine.dispose()


def _counts(url: str) -> tuple[int, int]:
    """(tries ended, DAG runs finished)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ended = conn.execute(text("SELECT count(*) FROM task_try WHERE end_date IS NOT NULL")).scalar_one()
            done = conn.execute(text("SELECT count(*) FROM dag_run WHERE state IN ('success', 'failed')")).scalar_one()
            return int(ended), int(done)
    finally:
        engine.dispose()


def measure(schedulers: int, *, base_url: str, parallelism: int, timeout: float) -> dict[str, object]:
    """Run the 10 × 200 workload under ``schedulers`` schedulers; the figures (see the module docstring)."""
    loops = LoopTimes()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="headrace-multi-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_multi.py").write_text(DAG_FILE.format(dags=DAGS, tasks=TASKS))
        url, pg_name = _database(base_url, home, 1000 + schedulers)
        env = _env(
            home,
            HEADRACE__CORE__PARALLELISM=str(parallelism),
            HEADRACE__CORE__EXECUTOR="local",
            HEADRACE__DATABASE__URL=url,
            HEADRACE__SCHEDULER__STANDALONE_DAG_PROCESSOR="true",
            HEADRACE__METRICS__STATSD_HOST="127.0.0.1",
            HEADRACE__METRICS__STATSD_PORT=str(loops.port),
            HEADRACE__METRICS__SCHEDULER_PORT="0",
        )
        try:
            _headrace(env, "db", "migrate")
            for command in [("dag-processor",)] + [("scheduler",)] * schedulers:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "headrace", *command],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=open(home / f"{command[0]}-{len(procs)}.err", "w"),  # noqa: SIM115
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + 120
            while _dags(url) < DAGS and time.monotonic() < deadline:
                time.sleep(0.3)
            triggered = time.monotonic()
            for d in range(DAGS):
                _headrace(env, "dags", "trigger", f"bench_multi_{d:02d}")
            start_at = start_count = None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ended, done = _counts(url)
                if start_at is None and ended >= WARMUP_TRIES:
                    start_at, start_count = time.monotonic(), ended
                if done >= DAGS:
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(f"{schedulers} scheduler(s): the runs did not end within {timeout} s")
            end_at = time.monotonic()
            assert start_at is not None and start_count is not None
            ms = sorted(loops.between(start_at, end_at))
            return {
                "schedulers": schedulers,
                "tries": ended,
                "tries_per_second": round((ended - start_count) / (end_at - start_at), 1),
                "seconds": round(end_at - triggered, 1),
                "loops": len(ms),
                "loop_ms_p50": round(statistics.median(ms), 1) if ms else None,
                "loop_ms_p95": round(ms[max(0, int(len(ms) * 0.95) - 1)], 1) if ms else None,
            }
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
            loops.close()
            if pg_name:
                time.sleep(1)  # let the supervisors' connections go
                _drop(pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedulers", default="1,2", help="comma-separated scheduler counts")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--parallelism", type=int, default=8, help="core.parallelism (over all schedulers)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per count")
    args = parser.parse_args()
    for n in (int(x) for x in args.schedulers.split(",")):
        print(json.dumps(measure(n, base_url=args.database_url, parallelism=args.parallelism, timeout=args.timeout)))


if __name__ == "__main__":
    main()
