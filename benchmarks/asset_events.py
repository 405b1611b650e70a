"""What assets cost: recording a producing try's events (in the outcome's transaction) and creating the
asset-triggered runs, for many consumer DAGs.

    python benchmarks/asset_events.py [--db sqlite|postgresql] [--consumers N] [--events E]

N consumer DAGs are scheduled on one asset (``schedule=[asset]``). Prints: the mean time of one
``record_asset_events`` call (one event of an outlet with N consumers: the asset row, the event row and one
``INSERT … SELECT … ON CONFLICT`` queueing it for all N) in its own transaction, over E events; then the
time of one ``create_asset_runs`` pass creating the N runs (claim by compare-and-set, run, task instances,
consumed-event links). PostgreSQL: a scratch database ``headrace_bench_assets_<pid>`` on
``postgresql+psycopg://postgres@127.0.0.1:5432``, created and dropped by this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import update

from headrace import DAG, Asset
from headrace.config import load_settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.assets import EventSource, record_asset_events
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagModel
from headrace.operators import EmptyOperator
from headrace.scheduler.asset_runs import create_asset_runs
from headrace.scheduler.dagcache import DagCache

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
ASSET = Asset("s3://bench/table")


def _database(kind: str, home: Path) -> tuple[Database, str | None]:
    if kind == "sqlite":
        return Database(f"sqlite:///{home / 'bench.db'}"), None
    name = f"headrace_bench_assets_{os.getpid()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return Database(f"{PG_SERVER}/{name}"), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--consumers", type=int, default=100)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        db, pg_name = _database(args.db, home)
        try:
            migrate(db)
            settings = load_settings(
                environ={"HEADRACE_HOME": str(home), "HEADRACE__DATABASE__URL": str(db.engine.url)}
            )
            dags = []
            with DAG("producer", schedule=None, start_date=datetime(2024, 1, 1)) as producer:
                EmptyOperator(task_id="make", outlets=[ASSET])
            dags.append(producer)
            for i in range(args.consumers):
                with DAG(f"consumer_{i:04d}", schedule=[ASSET]) as consumer:
                    EmptyOperator(task_id="use")
                dags.append(consumer)
            now = datetime.now(UTC)
            with db.session() as session:
                DagProcessor(settings, db).store_result(
                    session, ParseResult("bench.py", dags=[serialize_dag(d) for d in dags]), 0.0, 0, now
                )
                session.execute(update(DagModel).values(is_paused=False))
            times = []
            event = {"name": ASSET.name, "uri": ASSET.uri, "extra": {"rows": 1}}
            for i in range(args.events):
                began = time.perf_counter()
                with db.session() as session:
                    record_asset_events(
                        session, [event], source=EventSource("producer", "make", f"r{i}"), at=now + timedelta(seconds=i)
                    )
                times.append(time.perf_counter() - began)
            began = time.perf_counter()
            with db.session() as session:
                created = create_asset_runs(session, now + timedelta(hours=1), cache=DagCache())
            runs_seconds = time.perf_counter() - began
            print(f"database {args.db}, {args.consumers} consumer DAGs of one asset, {args.events} events")
            print(
                f"record one event (own transaction): mean {statistics.fmean(times) * 1000:.2f} ms, "
                f"median {statistics.median(times) * 1000:.2f} ms"
            )
            print(
                f"create_asset_runs: {created} runs in {runs_seconds * 1000:.0f} ms "
                f"({runs_seconds * 1000 / max(created, 1):.2f} ms per run)"
            )
        finally:
            db.dispose()
            if pg_name is not None:
                with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
