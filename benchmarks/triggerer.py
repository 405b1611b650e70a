"""Triggerer benchmark: ``python benchmarks/triggerer.py`` — 10,000 deferred waits in one triggerer.

On a fresh ``HEADRACE_HOME`` with the embedded SQLite (``--database-url`` for PostgreSQL), the benchmark
makes one DAG run with ``--waits`` (10,000) task instances of one mapped task, each ``deferred`` on its own
``TimeDeltaTrigger`` (stored, as the supervisor stores a deferral, as the ``DateTimeTrigger`` of its
moment). The moments are spread evenly over ``--spread`` seconds, starting ``--lead`` seconds after the
triggerer starts (time enough to claim and start them all). One ``headrace triggerer --capacity <waits>``
process runs them all.

Reported:

* the triggerer's peak RSS (bytes), sampled every 0.2 s;
* the event loop's lag (s): the largest 99th percentile and the largest lag the triggerer wrote with its
  heartbeats (``triggerer_job.loop_lag_p99`` / ``loop_lag_max``, over heartbeat windows of 1 s) while the
  triggers waited and while they fired;
* time from due to resumed (s), mean / p50 / p99 / max: from each trigger's moment to its task instance's
  ``deferred → scheduled`` (the event delivered and the task instance handed back to the scheduler, in one
  transaction: ``task_instance.updated_at``). From there the scheduler queues it like any scheduled task;
  launching the resumed try costs what any try's launch costs (``benchmarks/launch.py``).
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from sqlalchemy import func, insert, select

from headrace.authoring import xcom_serde
from headrace.config import load_settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import TaskInstance, Trigger, TriggererJob
from headrace.scheduler.runs import trigger_dag

DAG_SOURCE = """
from datetime import datetime
from headrace import DAG, task

with DAG("bench_triggerer", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def wait(i):
        return i
    wait.expand(i=[0])
"""


def _setup(
    db: Database, settings_env: dict[str, str], waits: int, first_due: datetime, spread: float
) -> list[datetime]:
    """Make the run and its ``waits`` deferred task instances, each with its trigger; return the moments."""
    settings = load_settings(settings_env)
    migrate(db)
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        run = trigger_dag(session, "bench_triggerer", now=datetime.now(UTC))
        run_pk, run_id = run.id, run.run_id
    moments = [first_due + timedelta(seconds=spread * i / max(1, waits - 1)) for i in range(waits)]
    now = datetime.now(UTC)
    with db.session() as session:
        trigger_ids = []
        for start in range(0, waits, 1000):
            chunk = moments[start : start + 1000]
            rows = [
                {
                    "classpath": "headrace.triggers.DateTimeTrigger",
                    "kwargs": json.dumps(xcom_serde.encode({"moment": m, "end_from_trigger": False})),
                    "created_date": now,
                }
                for m in chunk
            ]
            trigger_ids += list(session.scalars(insert(Trigger).returning(Trigger.id), rows))
        session.execute(
            insert(TaskInstance),
            [
                {
                    "dag_run_id": run_pk,
                    "dag_id": "bench_triggerer",
                    "run_id": run_id,
                    "task_id": "wait",
                    "map_index": 1000 + i,  # beside the run's own index 0, which the scheduler never sees here
                    "state": "deferred",
                    "try_number": 1,
                    "trigger_id": trigger_ids[i],
                    "next_method": "resumed",
                    "updated_at": now,
                }
                for i in range(waits)
            ],
        )
    return moments


def run(waits: int, lead: float, spread: float, database_url: str | None, timeout: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_triggerer.py").write_text(DAG_SOURCE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
        env.update(
            {
                "HEADRACE_HOME": str(home),
                "HEADRACE__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
            }
        )
        if database_url:
            env["HEADRACE__DATABASE__URL"] = database_url
        settings = load_settings(env)
        db = Database(settings.database_url)
        moments = _setup(db, env, waits, datetime.now(UTC) + timedelta(seconds=lead), spread)
        proc = subprocess.Popen(
            [sys.executable, "-m", "headrace", "triggerer", "--capacity", str(waits)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(home / "triggerer.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        process = psutil.Process(proc.pid)
        rss_peak = 0
        lag_wait: list[tuple[float, float]] = []
        lag_fire: list[tuple[float, float]] = []
        deadline = time.monotonic() + timeout
        first_due = moments[0]
        try:
            while time.monotonic() < deadline:
                time.sleep(0.2)
                rss_peak = max(rss_peak, process.memory_info().rss)
                with db.read_session() as session:
                    left = session.scalar(
                        select(func.count()).select_from(TaskInstance).where(TaskInstance.state == "deferred")
                    )
                    job = session.execute(select(TriggererJob.loop_lag_p99, TriggererJob.loop_lag_max)).first()
                if job is not None and job[0] is not None:
                    (lag_fire if datetime.now(UTC) >= first_due else lag_wait).append((job[0], job[1] or 0.0))
                if left == 0:
                    break
            else:
                raise SystemExit(f"not every trigger fired within {timeout} s (see {home / 'triggerer.log'})")
            with db.read_session() as session:
                rows = session.execute(
                    select(TaskInstance.map_index, TaskInstance.updated_at, TaskInstance.state).where(
                        TaskInstance.map_index >= 1000
                    )
                ).all()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            db.dispose()
        assert all(state == "scheduled" for _, _, state in rows), "a task instance was not resumed"
        latencies = sorted((updated - moments[index - 1000]).total_seconds() for index, updated, _ in rows)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

        return {
            "waits": waits,
            "database": "postgresql" if database_url else "sqlite",
            "rss_peak_bytes": rss_peak,
            "loop_lag_p99_while_waiting_seconds": max((p for p, _ in lag_wait), default=None),
            "loop_lag_max_while_waiting_seconds": max((m for _, m in lag_wait), default=None),
            "loop_lag_p99_while_firing_seconds": max((p for p, _ in lag_fire), default=None),
            "loop_lag_max_while_firing_seconds": max((m for _, m in lag_fire), default=None),
            "due_to_resumed_mean_seconds": round(statistics.fmean(latencies), 4),
            "due_to_resumed_p50_seconds": round(pct(0.5), 4),
            "due_to_resumed_p99_seconds": round(pct(0.99), 4),
            "due_to_resumed_max_seconds": round(latencies[-1], 4),
            "spread_seconds": spread,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=10_000, help="deferred task instances (default 10000)")
    parser.add_argument("--lead", type=float, default=30.0, help="seconds before the first is due (default 30)")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the moments spread over (default 10)")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the temporary HEADRACE_HOME")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    result = run(args.waits, args.lead, args.spread, args.database_url, args.timeout)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
