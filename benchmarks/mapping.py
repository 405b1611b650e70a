"""Dynamic task mapping benchmark: ``python benchmarks/mapping.py`` expands and runs a 1,000-index map.

The DAG: ``numbers()`` returns ``list(range(N))`` and ``noop.expand(x=numbers())``
maps over it (N = 1,000 by default, ``--length``). Two measurements, each on a
fresh ``HEADRACE_HOME`` on the embedded SQLite default:

expansion — in this process, the scheduler's examine step that expands the
    mapped task once ``numbers`` succeeded (its ``task_map`` row recorded):
    it turns the ``-1`` task instance into N instances and schedules them all
    (one transaction). Reported: milliseconds for that step (median of
    ``--repeat`` runs, each on a new DAG run).
item read — in this process, what one mapped try pays to get its item of
    ``numbers``' value: the supervisor's answer (a real SQLite database), the
    message both ways, decoding; ``whole`` pulls the list (``GetXCom``) and
    indexes it, ``item`` asks for the one item (``GetMappedItems``); the same for
    the values a mapped upstream task's N instances pushed (``mapped_*``).
    Reported: CPU microseconds of this process (median over 200 map indexes;
    CPU time, not wall time, so other load on the machine changes it little).
run — ``headrace scheduler`` (local executor, ``--parallelism``) runs the DAG
    from a trigger to the run's end, every try in its own supervised process.
    Reported: total wall time (run start → run end), the hop from ``numbers``'
    end to the first mapped try's start (pushing, recording the length,
    expanding, queueing, launching), tries per second over the mapped tries
    (first start → last end), and the median CPU time of a mapped try's process
    tree (``task_try.cpu_seconds``: less sensitive to other load on the machine
    than the wall times).
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
from datetime import UTC, datetime
from pathlib import Path

DAG_SOURCE = """
from datetime import datetime
from headrace import DAG, task

with DAG("bench_mapping", schedule=None, start_date=datetime(2026, 1, 1), max_active_tasks=100_000):
    @task
    def numbers() -> list[int]:
        return list(range({length}))

    @task
    def noop(x: int) -> None:
        return None

    noop.expand(x=numbers())
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


def _ts(value: str) -> float:
    return datetime.fromisoformat(value + "+00:00").timestamp()


def expansion_ms(length: int, repeat: int) -> list[float]:
    """Milliseconds of the examine step that expands the mapped task and schedules its instances, per run."""
    from sqlalchemy import select

    from headrace.config import load_settings
    from headrace.dagfiles.processor import DagProcessor
    from headrace.db.engine import Database
    from headrace.db.migrate import migrate
    from headrace.db.models import DagModel, TaskInstance, TaskMap
    from headrace.db.transitions import set_ti_state
    from headrace.scheduler.dagcache import DagCache
    from headrace.scheduler.readiness import examine_runs
    from headrace.scheduler.runs import start_queued_runs, trigger_dag
    from headrace.states import TaskInstanceState as TI

    timings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_mapping.py").write_text(textwrap.dedent(DAG_SOURCE.format(length=length)))
        settings = load_settings({"HEADRACE_HOME": str(home)})
        db = Database(settings.database_url)
        migrate(db)
        DagProcessor(settings, db).refresh(datetime.now(UTC))
        with db.session() as session:
            session.get(DagModel, "bench_mapping").is_paused = False  # type: ignore[union-attr]
        cache = DagCache()
        for i in range(repeat):
            now = datetime.now(UTC)
            with db.session() as session:
                run = trigger_dag(session, "bench_mapping", run_id=f"bench_{i}", now=now)
                start_queued_runs(session, now)
                examine_runs(session, now, cache=cache)
                upstream = session.scalars(
                    select(TaskInstance).where(TaskInstance.dag_run_id == run.id, TaskInstance.task_id == "numbers")
                ).one()
                for old, new in ((TI.SCHEDULED, TI.QUEUED), (TI.QUEUED, TI.RUNNING), (TI.RUNNING, TI.SUCCESS)):
                    set_ti_state(session, upstream.id, old, new)
                session.add(
                    TaskMap(
                        dag_run_id=run.id,
                        task_id="numbers",
                        map_index=-1,
                        dag_id="bench_mapping",
                        run_id=run.run_id,
                        length=length,
                        keys=None,
                    )
                )
                run_pk = run.id
            start = time.perf_counter()
            with db.session() as session:
                changed = examine_runs(session, datetime.now(UTC), cache=cache, run_ids=[run_pk])
            timings.append((time.perf_counter() - start) * 1000)
            if changed != length:
                raise SystemExit(f"expansion scheduled {changed} task instances, expected {length}")
        db.dispose()
    return timings


def item_read_us(length: int, item_chars: int = 0) -> dict[str, float]:
    """Median CPU microseconds for one map index to get its item: the whole value, or the item alone.

    ``item_chars``: 0 maps over ``list(range(length))``; else over strings of that many characters."""
    from headrace.authoring.mapped_items import read_item
    from headrace.authoring.xcom import deserialize_xcom, serialize_xcom
    from headrace.config import load_settings
    from headrace.dagfiles.processor import DagProcessor
    from headrace.db.engine import Database
    from headrace.db.migrate import migrate
    from headrace.db.models import TaskMap, XCom
    from headrace.scheduler.runs import trigger_dag
    from headrace.supervisor import protocol
    from headrace.supervisor.store import TryTarget
    from headrace.supervisor.task_requests import handle

    out: dict[str, list[float]] = {"whole": [], "item": [], "mapped_whole": [], "mapped_item": []}
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_mapping.py").write_text(textwrap.dedent(DAG_SOURCE.format(length=length)))
        settings = load_settings({"HEADRACE_HOME": str(home)})
        db = Database(settings.database_url)
        migrate(db)
        DagProcessor(settings, db).refresh(datetime.now(UTC))
        with db.session() as session:
            run = trigger_dag(session, "bench_mapping", run_id="items", now=datetime.now(UTC))
            where = {"dag_run_id": run.id, "dag_id": "bench_mapping", "run_id": "items", "task_id": "numbers"}
            value = list(range(length)) if not item_chars else [f"{i:0{item_chars}d}" for i in range(length)]
            text = serialize_xcom(value, 1 << 20)
            session.add(XCom(**where, map_index=-1, key="return_value", value=text, created_at=datetime.now(UTC)))
            session.add(TaskMap(**where, map_index=-1, length=length, keys=None))
            mapped = {**where, "task_id": "squares", "key": "return_value", "created_at": datetime.now(UTC)}
            session.add_all(XCom(**mapped, map_index=i, value=serialize_xcom(v, 1 << 20)) for i, v in enumerate(value))
            target = TryTarget(ti_id=0, dag_run_pk=run.id, dag_id="bench_mapping", run_id="items", task_id="noop")

        def serve(message: protocol.Request) -> protocol.Response:
            answer = handle(db, target, message, 1 << 20, lambda: None)  # type: ignore[arg-type,return-value]
            return protocol.decode_response(protocol.encode(answer))

        def decode(text: str, task_id: str, key: str, map_index: int) -> object:
            return deserialize_xcom(text, task_id=task_id, map_index=map_index)

        for prefix, task_id, mapped_up in (("", "numbers", False), ("mapped_", "squares", True)):
            spec = [{"xcom": task_id, "key": "return_value", "mapped": mapped_up}]
            for index in range(0, length, max(1, length // 200)):
                start = time.process_time()
                whole = serve(protocol.GetXCom(task_ids=task_id))
                assert isinstance(whole, protocol.XComValue) and whole.value_json is not None
                one = whole.map_indexes[0] if whole.map_indexes else None
                expected = deserialize_xcom(whole.value_json, task_id=task_id, map_indexes=one)[index]
                out[prefix + "whole"].append((time.process_time() - start) * 1e6)
                start = time.process_time()
                item = serve(protocol.GetMappedItems(specs=spec, map_index=index))
                assert isinstance(item, protocol.MappedItems) and item.items is not None
                picked = read_item(item.items[0], decode)
                out[prefix + "item"].append((time.process_time() - start) * 1e6)
                if picked.value != expected:
                    raise SystemExit(f"map index {index}: item {picked.value!r}, whole value's {expected!r}")
        db.dispose()
    return {k: round(statistics.median(v), 1) for k, v in out.items()}


def run_through_scheduler(length: int, parallelism: int, timeout: float) -> dict[str, float]:
    """Trigger the DAG under ``headrace scheduler`` and read the run's and tries' times from the database."""
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_mapping.py").write_text(textwrap.dedent(DAG_SOURCE.format(length=length)))
        env = _env(home, HEADRACE__CORE__PARALLELISM=str(parallelism), HEADRACE__CORE__EXECUTOR="local")
        _headrace(env, "db", "migrate")
        sched = subprocess.Popen(
            [sys.executable, "-m", "headrace", "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(home / "scheduler.err", "w"),  # noqa: SIM115 - lives as long as the process
        )
        db_path = home / "headrace.db"
        try:
            deadline = time.monotonic() + 60
            while "bench_mapping" not in _headrace(env, "dags", "list") and time.monotonic() < deadline:
                time.sleep(0.2)
            _headrace(env, "dags", "unpause", "bench_mapping")
            _headrace(env, "dags", "trigger", "bench_mapping")
            deadline = time.monotonic() + timeout
            state = None
            while time.monotonic() < deadline:
                with sqlite3.connect(db_path) as conn:
                    row = conn.execute("SELECT state FROM dag_run").fetchone()
                state = row[0] if row else None
                if state in ("success", "failed"):
                    break
                time.sleep(0.5)
            if state != "success":
                raise SystemExit(f"the run ended {state!r} (or not within {timeout} s); see {home}/scheduler.err")
        finally:
            sched.send_signal(signal.SIGTERM)
            sched.wait(timeout=60)
        with sqlite3.connect(db_path) as conn:
            run_start, run_end = conn.execute("SELECT start_date, end_date FROM dag_run").fetchone()
            upstream_end = conn.execute("SELECT end_date FROM task_try WHERE task_id = 'numbers'").fetchone()[0]
            mapped = conn.execute(
                "SELECT start_date, end_date FROM task_try WHERE task_id = 'noop' AND state = 'success'"
            ).fetchall()
            cpu = [
                float(c)
                for (c,) in conn.execute(
                    "SELECT cpu_seconds FROM task_try WHERE task_id = 'noop' AND state = 'success'"
                )
                if c is not None
            ]
    if len(mapped) != length:
        raise SystemExit(f"{len(mapped)} mapped tries succeeded, expected {length}")
    first_start = min(_ts(s) for s, _ in mapped)
    last_end = max(_ts(e) for _, e in mapped)
    return {
        "wall_seconds": round(_ts(run_end) - _ts(run_start), 2),
        "hop_to_first_mapped_try_ms": round((first_start - _ts(upstream_end)) * 1000, 1),
        "mapped_tries_per_second": round(length / (last_end - first_start), 1),
        "cpu_ms_per_mapped_try": round(statistics.median(cpu) * 1000, 1) if cpu else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=1000, help="items mapped over (default 1000)")
    parser.add_argument("--parallelism", type=int, default=8, help="core.parallelism of the run (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="expansion measurements (default 5)")
    parser.add_argument("--skip-run", action="store_true", help="only the in-process measurements")
    parser.add_argument(
        "--item-chars", type=int, default=0, help="item read: map over strings this long (default 0: ints)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    timings = expansion_ms(args.length, args.repeat)
    results: dict[str, object] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "length": args.length,
        "expansion_ms_median": round(statistics.median(timings), 1),
        "expansion_ms_all": [round(t, 1) for t in timings],
        "item_read_us_median": item_read_us(args.length, args.item_chars),
    }
    if not args.skip_run:
        results.update(run_through_scheduler(args.length, args.parallelism, timeout=1800))
        results["parallelism"] = args.parallelism
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"mapping benchmark on {results['cpus']} CPUs, Python {results['python']}, SQLite, {args.length} indices")
    print(f"expansion (examine step: -1 -> {args.length} scheduled): {results['expansion_ms_median']} ms median")
    reads = results["item_read_us_median"]
    assert isinstance(reads, dict)
    what = f"{args.item_chars}-character strings" if args.item_chars else "ints"
    print(
        f"a map index's item ({args.length} {what}): {reads['whole']} us pulling the whole value, "
        f"{reads['item']} us for the item alone (CPU, median); of a mapped upstream's {args.length} values: "
        f"{reads['mapped_whole']} us whole, {reads['mapped_item']} us the item alone"
    )
    if not args.skip_run:
        print(
            f"run through the scheduler, parallelism {args.parallelism}: {results['wall_seconds']} s wall, "
            f"{results['mapped_tries_per_second']} mapped tries/s, "
            f"{results['cpu_ms_per_mapped_try']} ms CPU per mapped try (median), "
            f"{results['hop_to_first_mapped_try_ms']} ms from the upstream's end to the first mapped try"
        )


if __name__ == "__main__":
    main()
