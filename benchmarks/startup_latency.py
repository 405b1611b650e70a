"""CLI start-up and trigger latency (issue #7): ``python benchmarks/startup_latency.py``.

    python benchmarks/startup_latency.py [--db sqlite|postgresql] [--runs 10] [--only S,T,C]

Prints medians of ``--runs`` runs (10 by default):

S start-up — wall time (and CPU time, user + system, which load on the machine
    disturbs less) of ``headrace --help``, ``headrace dags list`` and
    ``headrace dags trigger``, each a fresh process. Two columns: with cached
    bytecode (what a ``pip install`` gives: ``PYTHONPYCACHEPREFIX`` in a
    temporary folder, warmed by one untimed run) and without
    (``PYTHONDONTWRITEBYTECODE=1``: every headrace module compiled at import).
T trigger → first task — a ``headrace scheduler`` with default settings
    (``loop_interval`` 1 s) runs; ``headrace dags trigger`` of a one-task DAG;
    the time from the command's exit to the task try's ``start_date`` (negative
    when the task started before the command had finished exiting), and from
    the run's ``queued_at`` (stamped by the command just before its commit).
C 50-task chain from the CLI call — the time from starting
    ``headrace dags trigger`` to the end of the chain's last try, and the chain
    itself (first try start → last try end).

Everything runs in a fresh ``HEADRACE_HOME`` under a temporary folder, on the
embedded SQLite file or (``--db postgresql``) a scratch database
``headrace_bench_<pid>`` on ``postgresql+psycopg://postgres@127.0.0.1:5432``,
created and dropped here.

Figures on the 2-CPU development VM (Python 3.11, SQLite; wall / CPU seconds,
cached bytecode; the VM was shared with other test runs, load average 1-6, so
wall times are noisy and CPU times are the steadier guide), before and after
issue #7's start-up and wake-up work:

    figure                                    before (0b7790f+)     after
    headrace --help                           1.89 / 1.15 s         0.19 / 0.19 s
    headrace dags list                        1.67 / 1.04 s         0.59 / 0.59 s
    headrace dags trigger                     2.10 / 1.09 s         0.65 / 0.64 s
    trigger exit -> first task start          297 ms (-420..712)    -164 ms (-247..-126)
    run queued -> first task start            800 ms                33 ms
    50-task chain from the CLI call           4.86 s                2.07 s
    the chain itself                          2.68 s                1.57 s

(A negative figure: the task started before the ``dags trigger`` process had
finished exiting.)

The second start-up pass (lazy ``headrace/__init__``, jinja2 and croniter on first use, no DAG
processor behind ``dags trigger``, Typer below 0.29), measured alternately in one sitting later on a
slower moment of the same VM (load about 1; medians of 10, wall / CPU; before = 1d67dc7 with
Typer 0.29, after = the end of that session with the features merged since):

    figure                     before (1d67dc7)            after
    headrace --help            0.31-0.32 / 0.31-0.32 s     0.27 / 0.27 s
    headrace dags list         0.75-0.88 / 0.74-0.88 s     0.78-0.82 / 0.76-0.82 s
    headrace dags trigger      0.96-1.03 / 0.96-1.02 s     0.75-0.84 / 0.74-0.83 s

At a quiet moment right after that change, ``dags list`` took 0.49-0.55 s wall (0.43-0.49 s CPU)
against 0.65-0.80 s before. The floor is SQLAlchemy: ``python -c "import sqlalchemy.orm"`` alone
takes 0.36-0.53 s on this VM. ``dags list`` and ``dags trigger`` stay above 0.5 s:
importing SQLAlchemy (core and ORM, ~0.25 s CPU here), the models, Typer's own
start-up (~0.15 s with the pydantic it imports) and ``headrace/__init__``
(the authoring API, ~0.08 s: jinja2, croniter) are most of what is left.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import select

from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskTry

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
CHAIN_TASKS = 50

DAGS = {
    "bench_one.py": """
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("bench_one", schedule=None, max_active_runs=1):
            EmptyOperator(task_id="only")
    """,
    "bench_chain.py": f"""
        from headrace import DAG, chain
        from headrace.operators import PythonOperator

        def noop() -> None:
            return None

        with DAG("bench_chain", schedule=None, max_active_runs=1):
            chain(*[PythonOperator(task_id=f"step_{{i:02d}}", python_callable=noop) for i in range({CHAIN_TASKS})])
    """,
}


def _env(home: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        HEADRACE_HOME=str(home),
        HEADRACE__DATABASE__URL=url,
        HEADRACE__METRICS__SCHEDULER_PORT="0",
        HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",  # the benchmark DAGs are triggered at once
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
    )
    env.update(extra)
    return env


def _headrace(env: dict[str, str], *args: str) -> tuple[float, float]:
    """Run ``headrace args``; return (wall seconds, CPU seconds of the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "headrace", *args], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"headrace {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _wait_run_end(db: Database, dag_id: str, count: int, timeout: float = 120) -> None:
    """Wait until ``dag_id`` has ``count`` finished runs, all successful."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read_session() as session:
            states = list(session.scalars(select(DagRun.state).where(DagRun.dag_id == dag_id)))
        if len(states) >= count and all(s in ("success", "failed") for s in states):
            if "failed" in states:
                raise SystemExit(f"a run of {dag_id} failed")
            return
        time.sleep(0.02)
    raise SystemExit(f"{dag_id}: {count} runs not finished within {timeout} s")


def _tries(db: Database, dag_id: str, run_number: int) -> tuple[datetime, list[tuple[datetime, datetime]]]:
    """The ``run_number``-th run of ``dag_id`` (1-based): its ``queued_at``, and (start, end) of every try, by start."""
    with db.read_session() as session:
        runs = session.execute(
            select(DagRun.run_id, DagRun.queued_at).where(DagRun.dag_id == dag_id).order_by(DagRun.id)
        ).all()
        run_id, queued_at = runs[run_number - 1]
        rows = session.execute(
            select(TaskTry.start_date, TaskTry.end_date)
            .where(TaskTry.dag_id == dag_id, TaskTry.run_id == run_id)
            .order_by(TaskTry.start_date)
        ).all()
    return _aware(queued_at), [(_aware(s), _aware(e)) for s, e in rows]


def startup(env: dict[str, str], runs: int) -> dict[str, tuple[float, float, float, float]]:
    """Per command: (wall, CPU) medians with cached bytecode, then without."""
    commands = {"--help": ("--help",), "dags list": ("dags", "list"), "dags trigger": ("dags", "trigger", "bench_one")}
    no_cache = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    no_cache.pop("PYTHONPYCACHEPREFIX")
    out = {}
    for name, args in commands.items():
        _headrace(env, *args)  # warm the bytecode cache
        cached = [_headrace(env, *args) for _ in range(runs)]
        cold = [_headrace(no_cache, *args) for _ in range(runs)]
        out[name] = (
            statistics.median(w for w, _ in cached),
            statistics.median(c for _, c in cached),
            statistics.median(w for w, _ in cold),
            statistics.median(c for _, c in cold),
        )
    return out


def trigger_latency(
    env: dict[str, str], db: Database, dag_id: str, runs: int
) -> list[tuple[float, float, float, float]]:
    """Per run: (trigger exit → first try start, CLI call → last try end, first try start → last try end,
    run queued (in the CLI, just before its commit) → first try start)."""
    samples = []
    with db.read_session() as session:
        done = len(list(session.scalars(select(DagRun.id).where(DagRun.dag_id == dag_id))))
    for _ in range(runs):
        time.sleep(0.3)  # let the scheduler go idle: the trigger must wake it
        called = datetime.now(UTC)
        wall, _ = _headrace(env, "dags", "trigger", dag_id)
        returned = called.timestamp() + wall
        done += 1
        _wait_run_end(db, dag_id, done)
        queued_at, tries = _tries(db, dag_id, done)
        first_start, last_end = tries[0][0].timestamp(), max(e for _, e in tries).timestamp()
        samples.append(
            (
                first_start - returned,
                last_end - called.timestamp(),
                last_end - first_start,
                first_start - queued_at.timestamp(),
            )
        )
    return samples


def _scratch_pg() -> str:
    name = f"headrace_bench_{os.getpid()}"
    with psycopg.connect(f"{PG_SERVER.replace('+psycopg', '')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def _drop_pg(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{PG_SERVER.replace('+psycopg', '')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", default="S,T,C", help="comma-separated parts (S start-up, T trigger, C chain)")
    args = parser.parse_args()
    wanted = {w.strip().upper() for w in args.only.split(",")}
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        for name, source in DAGS.items():
            (home / "dags" / name).write_text(textwrap.dedent(source))
        url = _scratch_pg() if args.db == "postgresql" else f"sqlite:///{home / 'headrace.db'}"
        env = _env(home, url)
        db = Database(url)
        sched: subprocess.Popen[bytes] | None = None
        try:
            _headrace(env, "db", "migrate")
            with (home / "scheduler.log").open("wb") as log:
                sched = subprocess.Popen(
                    [sys.executable, "-m", "headrace", "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + 60
            while (
                "bench_chain"
                not in subprocess.run(
                    [sys.executable, "-m", "headrace", "dags", "list"], env=env, capture_output=True, text=True
                ).stdout
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the scheduler did not parse the DAGs; see {home / 'scheduler.log'}")
                time.sleep(0.2)
            print(
                f"headrace start-up and trigger latency on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
                f"{args.db}, medians of {args.runs} runs, load average {os.getloadavg()[0]:.2f} at start"
            )
            if "T" in wanted or "C" in wanted:
                trigger_latency(env, db, "bench_one", 1)  # warm-up: the fork server starts
            if "T" in wanted:
                one = trigger_latency(env, db, "bench_one", args.runs)
                lat = sorted(s[0] * 1000 for s in one)
                print(
                    f"T trigger exit -> first task start: {statistics.median(lat):.0f} ms median "
                    f"(min {lat[0]:.0f}, max {lat[-1]:.0f})   (target <= 100 ms); run queued -> first task "
                    f"{statistics.median(s[3] for s in one) * 1000:.0f} ms"
                )
            if "C" in wanted:
                chain = trigger_latency(env, db, "bench_chain", args.runs)
                total = sorted(s[1] for s in chain)
                print(
                    f"C {CHAIN_TASKS}-task chain from the CLI call: {statistics.median(total):.2f} s median "
                    f"(min {total[0]:.2f}, max {total[-1]:.2f}); the chain itself "
                    f"{statistics.median(s[2] for s in chain):.2f} s; "
                    f"trigger exit -> first task {statistics.median(s[0] for s in chain) * 1000:.0f} ms"
                )
            sched.send_signal(signal.SIGTERM)  # start-up is measured on a quiet machine
            sched.wait(timeout=60)
            sched = None
            if "S" in wanted:
                print(
                    "S start-up        cached bytecode (wall / CPU)   no bytecode cache (wall / CPU)   (target <= 0.5 s)"
                )
                for name, (w, c, cw, cc) in startup(env, args.runs).items():
                    print(f"  headrace {name:<13} {w:6.2f} s / {c:5.2f} s            {cw:6.2f} s / {cc:5.2f} s")
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
        finally:
            if sched is not None:
                sched.send_signal(signal.SIGTERM)
                sched.wait(timeout=60)
            db.dispose()
            if args.db == "postgresql":
                _drop_pg(url)


if __name__ == "__main__":
    main()
