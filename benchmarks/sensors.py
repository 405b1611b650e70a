"""Reschedule sensors benchmark: ``python benchmarks/sensors.py`` — 200 sensors waiting on a file cost nothing.

The DAG has ``--sensors`` (200) ``FileSensor`` tasks in ``mode="reschedule"``
(``poke_interval`` ``--poke-interval``, 60 s: Airflow's default) waiting for one file. It runs
under ``headrace scheduler`` (local executor, ``core.parallelism``
``--parallelism``) on a fresh ``HEADRACE_HOME`` with the embedded SQLite.

While the file is missing (``--wait`` seconds) the benchmark samples, every
0.2 s: the task instances by state (``queued`` + ``running`` hold executor and
pool slots), and the scheduler's process tree by depth — its children (the
fork server, which stays ``executor.forkserver_idle_timeout`` after the last
try), their children (supervisors, one per running try, and DAG parsing
children) and anything deeper (task processes). Reported: how many samples
found every sensor waiting in ``up_for_reschedule`` and, in those, the most
processes at each depth and slots seen (the claim: 0 task processes, 0 slots); the most slots and task processes at any sample
(at most ``parallelism`` while pokes run); the pokes made (``task_reschedule``
rows) and the try numbers used (the claim: only 1). Then the file lands and
the benchmark reports the seconds until every sensor succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

DAG_SOURCE = """
from datetime import datetime
from headrace import DAG
from headrace.sensors import FileSensor

with DAG("bench_sensors", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=100_000):
    for i in range({sensors}):
        FileSensor(task_id=f"wait_{{i:03d}}", filepath={flag!r}, mode="reschedule", poke_interval={interval},
                   timeout=3600)
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env["HEADRACE_HOME"] = str(home)
    env.update(extra)
    return env


def _headrace(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "headrace", *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"headrace {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _states(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path, timeout=30) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM task_instance GROUP BY state").fetchall())


def _parsed(db_path: Path) -> bool:
    try:
        with sqlite3.connect(db_path, timeout=30) as conn:
            return conn.execute("SELECT 1 FROM dag WHERE dag_id = 'bench_sensors'").fetchone() is not None
    except sqlite3.OperationalError:  # not migrated yet
        return False


def _processes(scheduler: psutil.Process) -> dict[str, int]:
    """The scheduler's process tree by depth: the fork server (a child, started on demand), its children
    (supervisors, one per running try, and DAG parsing children), and below them the task processes (and
    whatever they started)."""
    depth = {scheduler.pid: 0}
    counts = {"scheduler_children": 0, "fork_server_children": 0, "task_processes": 0}
    try:
        descendants = scheduler.children(recursive=True)
    except psutil.Error:
        return counts
    pending = list(descendants)
    for _ in range(len(pending) + 1):  # parents before children, whatever order psutil gave
        if not pending:
            break
        rest = []
        for proc in pending:
            try:
                parent = proc.ppid()
            except psutil.Error:
                continue
            if parent in depth:
                depth[proc.pid] = depth[parent] + 1
            else:
                rest.append(proc)
        pending = rest
    for pid, d in depth.items():
        if pid == scheduler.pid:
            continue
        key = "scheduler_children" if d == 1 else "fork_server_children" if d == 2 else "task_processes"
        counts[key] += 1
    return counts


def run(sensors: int, parallelism: int, interval: float, wait: float, timeout: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        flag = home / "landing" / "ready.flag"
        flag.parent.mkdir()
        (home / "dags" / "bench_sensors.py").write_text(
            DAG_SOURCE.format(sensors=sensors, flag=str(flag), interval=interval)
        )
        env = _env(home, HEADRACE__CORE__PARALLELISM=str(parallelism), HEADRACE__CORE__EXECUTOR="local")
        _headrace(env, "db", "migrate")
        err = open(home / "scheduler.err", "w")  # noqa: SIM115 - lives as long as the process
        sched = subprocess.Popen([sys.executable, "-m", "headrace", "scheduler"], env=env, stdout=err, stderr=err)
        db_path = home / "headrace.db"
        try:
            deadline = time.monotonic() + 120
            while not _parsed(db_path):
                if time.monotonic() > deadline:
                    tail = (home / "scheduler.err").read_text()[-3000:]
                    raise SystemExit(f"the DAG was not parsed within 120 s; the scheduler said:\n{tail}")
                time.sleep(0.5)
            _headrace(env, "dags", "unpause", "bench_sensors")
            _headrace(env, "dags", "trigger", "bench_sensors")
            proc = psutil.Process(sched.pid)
            # wait until every sensor poked once, then sample for `wait` seconds
            deadline = time.monotonic() + timeout
            while _states(db_path).get("up_for_reschedule", 0) < sensors:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the sensors did not all poke within {timeout} s: {_states(db_path)}")
                time.sleep(0.2)
            samples = all_waiting = 0
            zero = {"scheduler_children": 0, "fork_server_children": 0, "task_processes": 0, "slots": 0}
            waiting_max, any_max = dict(zero), dict(zero)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                states = _states(db_path)
                slots = states.get("queued", 0) + states.get("running", 0)
                samples += 1
                seen = {**_processes(proc), "slots": slots}
                any_max = {k: max(v, seen[k]) for k, v in any_max.items()}
                if states.get("up_for_reschedule", 0) == sensors:
                    all_waiting += 1
                    waiting_max = {k: max(v, seen[k]) for k, v in waiting_max.items()}
                time.sleep(0.2)
            landed = time.monotonic()
            flag.write_text("ready")
            while _states(db_path).get("success", 0) < sensors:
                if time.monotonic() > landed + timeout:
                    raise SystemExit(f"the sensors did not all succeed within {timeout} s: {_states(db_path)}")
                time.sleep(0.1)
            to_success = time.monotonic() - landed
        finally:
            sched.send_signal(signal.SIGTERM)
            sched.wait(timeout=60)
            err.close()
        with sqlite3.connect(db_path) as conn:
            pokes = conn.execute("SELECT count(*) FROM task_reschedule").fetchone()[0]
            try_numbers = sorted({r[0] for r in conn.execute("SELECT try_number FROM task_try")})
            rows = conn.execute("SELECT count(*) FROM task_try").fetchone()[0]
    return {
        "sensors": sensors,
        "parallelism": parallelism,
        "poke_interval_s": interval,
        "samples": samples,
        "samples_with_every_sensor_waiting": all_waiting,
        "while_all_waiting_max": waiting_max,
        "any_sample_max": any_max,
        "rescheduled_pokes": pokes,
        "task_try_rows": rows,
        "try_numbers_used": try_numbers,
        "seconds_from_file_landing_to_all_success": round(to_success, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, default=200, help="FileSensors in the DAG (default 200)")
    parser.add_argument("--parallelism", type=int, default=8, help="core.parallelism (default 8)")
    parser.add_argument("--poke-interval", type=float, default=60.0, help="seconds between pokes (default 60)")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds sampled before the file lands (default 90)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the benchmark's scheduler on the way out
    results = run(args.sensors, args.parallelism, args.poke_interval, args.wait, args.timeout)
    results = {"cpus": os.cpu_count(), "python": sys.version.split()[0], **results}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
