"""headrace benchmarks: ``python benchmarks/run.py`` prints the figures issue #2 asks for.

W1 fanout — 200 independent no-op tasks in one DAG run, ``parallelism`` 8, every
    try in its own supervised process: tries per second (first try start → last
    try end) and CPU seconds per try (all headrace processes: scheduler, fork
    server, supervisors and task processes, from the kernel's rusage).
W2 chain — 50 no-op tasks in a line: milliseconds per dependency hop (end of
    task i → start of task i+1, mean and p95), and run wall time / 50.
W3 idle — ``headrace standalone`` after its example pipeline finished, idle
    for 60 s: number of headrace processes and their total RSS; and how long the pipeline's
    first (manual) run took, from queued to finished.

Everything runs in a fresh ``HEADRACE_HOME`` under a temporary folder on the
embedded SQLite default. ``--only W1,W2`` picks workloads; ``--idle-seconds``
shortens W3 for a quick look (the issue's figure is for 60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path

import psutil

W1_TASKS = 200
W2_TASKS = 50

W1_DAG = f"""
from datetime import datetime
from headrace import DAG, task

with DAG("bench_fanout", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=1000):
    @task
    def noop() -> None:
        return None

    for i in range({W1_TASKS}):
        noop.override(task_id=f"noop_{{i:03d}}")()
"""

W2_DAG = f"""
from datetime import datetime
from headrace import DAG, chain
from headrace.operators import PythonOperator

def noop() -> None:
    return None

with DAG("bench_chain", schedule=None, start_date=datetime(2026, 1, 1)):
    chain(*[PythonOperator(task_id=f"step_{{i:02d}}", python_callable=noop) for i in range({W2_TASKS})])
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env["HEADRACE_HOME"] = str(home)
    env["HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # the benchmark DAGs are triggered at once
    env["COLUMNS"] = "400"  # `dags list` must not wrap a dag_id across lines: the scripts look for it in the table
    env.update(extra)
    return env


def _headrace(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "headrace", *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"headrace {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _parse_ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _wait_run(db_path: Path, dag_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db_path) as conn:
                row = conn.execute("SELECT state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchone()
        except sqlite3.OperationalError:  # the file exists but is not migrated yet
            row = None
        if row and row[0] in ("success", "failed"):
            if row[0] != "success":
                raise SystemExit(f"{dag_id} run ended {row[0]}")
            return
        time.sleep(0.2)
    raise SystemExit(f"{dag_id} did not finish within {timeout} s")


def _manual_run_seconds(db_path: Path, dag_id: str, timeout: float) -> float:
    """Seconds from queued to finished of the manual run of ``dag_id`` (waits for it to finish)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db_path) as conn:
            row = conn.execute(
                "SELECT state, queued_at, end_date FROM dag_run WHERE dag_id = ? AND run_type = 'manual'", (dag_id,)
            ).fetchone()
        if row and row[0] in ("success", "failed") and row[2]:
            return round((datetime.fromisoformat(row[2]) - datetime.fromisoformat(row[1])).total_seconds(), 2)
        time.sleep(0.2)
    raise SystemExit(f"the manual run of {dag_id} did not finish within {timeout} s")


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid``, its live descendants and every descendant they reaped."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _run_workload(
    dag_id: str, source: str, parallelism: int, timeout: float
) -> tuple[list[tuple[str, float, float]], float]:
    """Run one DAG once under `headrace scheduler`; return (task_id, start, end) per try and CPU seconds."""
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / f"{dag_id}.py").write_text(textwrap.dedent(source))
        env = _env(home, HEADRACE__CORE__PARALLELISM=str(parallelism), HEADRACE__CORE__EXECUTOR="local")
        _headrace(env, "db", "migrate")
        sched = subprocess.Popen(
            [sys.executable, "-m", "headrace", "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(home / "scheduler.err", "w"),  # noqa: SIM115 - lives as long as the process
        )
        try:
            deadline = time.monotonic() + 60
            while "bench" not in _headrace(env, "dags", "list") and time.monotonic() < deadline:
                time.sleep(0.2)
            before = _tree_cpu(sched.pid)
            _headrace(env, "dags", "trigger", dag_id)
            _wait_run(home / "headrace.db", dag_id, timeout)
            time.sleep(0.5)  # let the last supervisors exit and be reaped
            cpu = _tree_cpu(sched.pid) - before
        finally:
            sched.send_signal(signal.SIGTERM)
            sched.wait(timeout=60)
        with sqlite3.connect(home / "headrace.db") as conn:
            rows = conn.execute(
                "SELECT task_id, start_date, end_date FROM task_try WHERE dag_id = ? ORDER BY start_date", (dag_id,)
            ).fetchall()
        tries = [(t, _parse_ts(s + "+00:00"), _parse_ts(e + "+00:00")) for t, s, e in rows]
        return tries, cpu


def w1(results: dict[str, object]) -> None:
    tries, cpu = _run_workload("bench_fanout", W1_DAG, parallelism=8, timeout=600)
    span = max(e for _, _, e in tries) - min(s for _, s, _ in tries)
    results["W1"] = {
        "tries": len(tries),
        "tries_per_second": round(len(tries) / span, 1),
        "cpu_seconds_per_try": round(cpu / len(tries), 4),
        "note": "CPU: scheduler + fork server + supervisors + task processes, from trigger to run end; span: first try start to last try end",
    }


def w2(results: dict[str, object]) -> None:
    tries, _ = _run_workload("bench_chain", W2_DAG, parallelism=8, timeout=600)
    tries.sort(key=lambda t: t[0])
    hops = [(tries[i + 1][1] - tries[i][2]) * 1000 for i in range(len(tries) - 1)]
    span = tries[-1][2] - tries[0][1]
    results["W2"] = {
        "tasks": len(tries),
        "ms_per_hop_mean": round(statistics.fmean(hops), 1),
        "ms_per_hop_p95": round(sorted(hops)[int(len(hops) * 0.95) - 1], 1),
        "ms_per_task_wall": round(span * 1000 / len(tries), 1),
    }


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    # Supervisors detach (setsid) but stay descendants of the fork server while it lives;
    # also count any process whose command line runs headrace from this home.
    return procs


def w3(results: dict[str, object], idle_seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        env = _env(home)
        proc = subprocess.Popen(
            [sys.executable, "-m", "headrace", "standalone", "--port", "0"],
            env=env,
            stdout=open(home / "standalone.out", "w"),  # noqa: SIM115 - lives as long as the process
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            while not (home / "headrace.db").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            _wait_run(home / "headrace.db", "example_penguins_report", 300)
            first_run = _manual_run_seconds(home / "headrace.db", "example_penguins_report", 300)
            time.sleep(idle_seconds)
            procs = [p for p in _tree(proc.pid) if p.is_running()]
            extra = [
                p
                for p in psutil.process_iter(["environ"])
                if p.pid not in {q.pid for q in procs}
                and (p.info.get("environ") or {}).get("HEADRACE_HOME") == str(home)
            ]
            everyone = procs + extra
            rss = sum(p.memory_info().rss for p in everyone)
            results["W3"] = {
                "idle_seconds": idle_seconds,
                "processes": len(everyone),
                "total_rss_mib": round(rss / 1048576, 1),
                "first_run_seconds": first_run,
                "commands": [" ".join(p.cmdline()[1:4]) for p in everyone],
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="W1,W2,W3", help="comma-separated workloads (W1,W2,W3)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="W3 idle time (s)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    wanted = {w.strip().upper() for w in args.only.split(",")}
    results: dict[str, object] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if "W1" in wanted:
        w1(results)
    if "W2" in wanted:
        w2(results)
    if "W3" in wanted:
        w3(results, args.idle_seconds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"headrace benchmarks on {results['cpus']} CPUs, Python {results['python']}, SQLite")
    if "W1" in results:
        r = results["W1"]
        print(
            f"W1 fanout  {r['tries']} tries: {r['tries_per_second']} tries/s, {r['cpu_seconds_per_try']} CPU s/try   (target >= 50 tries/s)"
        )  # type: ignore[index]
    if "W2" in results:
        r = results["W2"]
        print(
            f"W2 chain   {r['tasks']} tasks: {r['ms_per_hop_mean']} ms/hop mean, {r['ms_per_hop_p95']} ms p95, {r['ms_per_task_wall']} ms/task wall   (target <= 30 ms/hop)"
        )  # type: ignore[index]
    if "W3" in results:
        r = results["W3"]
        print(
            f"W3 idle    after {r['idle_seconds']:.0f} s: {r['processes']} processes, {r['total_rss_mib']} MiB RSS   (target <= 2 processes, <= 200 MiB); "
            f"the example pipeline's first run took {r['first_run_seconds']} s"
        )  # type: ignore[index]
        for c in r["commands"]:  # type: ignore[index]
            print(f"           - {c}")


if __name__ == "__main__":
    main()
