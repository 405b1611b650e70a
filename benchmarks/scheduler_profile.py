"""CPU the *scheduler process alone* spends per try on W1 (see ``benchmarks/run.py``).

``python benchmarks/scheduler_profile.py`` runs W1 (200 independent no-op
tasks in one DAG run, parallelism 8, LocalExecutor, SQLite) under
``headrace scheduler`` and prints the scheduler process's own CPU (user +
system, psutil; not its children: fork server, supervisors and tasks are
measured by ``run.py``) from the trigger to the end of the run, divided by the
number of tries, plus tries/s and loops.

``--profile FILE`` runs the scheduler under cProfile and writes the profile
to FILE when it stops (SIGTERM); ``--repeat N`` runs W1 N times and prints
each result and the median.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import W1_DAG, _env, _headrace, _parse_ts, _wait_run  # noqa: E402


def _own_cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(profile: str | None) -> dict[str, float]:
    """Run W1 once; return tries, tries/s and scheduler CPU ms per try."""
    with tempfile.TemporaryDirectory(prefix="headrace-sched-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_fanout.py").write_text(textwrap.dedent(W1_DAG))
        env = _env(home, HEADRACE__CORE__PARALLELISM="8", HEADRACE__CORE__EXECUTOR="local")
        _headrace(env, "db", "migrate")
        cmd = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "headrace", "scheduler"]
        sched = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(home / "scheduler.err", "w"))  # noqa: SIM115
        try:
            proc = psutil.Process(sched.pid)
            deadline = time.monotonic() + 60
            while "bench" not in _headrace(env, "dags", "list") and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            before = _own_cpu(proc)
            _headrace(env, "dags", "trigger", "bench_fanout")
            _wait_run(home / "headrace.db", "bench_fanout", 600)
            cpu = _own_cpu(proc) - before
        finally:
            sched.send_signal(signal.SIGTERM)
            sched.wait(timeout=60)
        with sqlite3.connect(home / "headrace.db") as conn:
            rows = conn.execute("SELECT start_date, end_date FROM task_try").fetchall()
        starts = [_parse_ts(s + "+00:00") for s, _ in rows]
        ends = [_parse_ts(e + "+00:00") for _, e in rows]
        n = len(rows)
        return {
            "tries": n,
            "tries_per_second": round(n / (max(ends) - min(starts)), 1),
            "scheduler_cpu_ms_per_try": round(cpu * 1000 / n, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", help="write a cProfile of the scheduler to this file")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    results = []
    for _ in range(args.repeat):
        r = measure(args.profile)
        results.append(r)
        print(
            f"W1 {r['tries']:.0f} tries: {r['tries_per_second']} tries/s, "
            f"scheduler {r['scheduler_cpu_ms_per_try']} ms CPU/try"
        )
    if args.repeat > 1:
        print(
            f"median: {statistics.median(r['tries_per_second'] for r in results)} tries/s, "
            f"{statistics.median(r['scheduler_cpu_ms_per_try'] for r in results)} ms CPU/try"
        )


if __name__ == "__main__":
    main()
