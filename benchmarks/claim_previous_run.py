"""The supervisor's claim query with and without the previous successful run (the context's prev_*_success).

    python benchmarks/claim_previous_run.py [--db sqlite|postgresql] [--runs N] [--repeat R]

A DAG ``d`` with N successful runs (a minute apart) and nine other DAGs with N/10 each; one task instance
in ``d``'s latest run. Prints the mean time of the claim's load query (``sql_store._LOAD``: the task
instance, its run, its serialized task and the previous successful run's dates, joined through
``queries.previous_success_id``) against the same query without that join, over R executions on one
connection (each execution is planned again: on PostgreSQL the extra join costs mostly planning time,
about 0.5 ms; its execution is an index step, ``ix_dag_run_dag_state_logical_date``, whatever N is).
PostgreSQL: a scratch database ``headrace_bench_prev_<pid>`` on
``postgresql+psycopg://postgres@127.0.0.1:5432``, created and dropped by this script.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, create_engine, insert, select, text

from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagRun, DagVersion, TaskInstance
from headrace.supervisor.sql_store import _LOAD

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _fill(db: Database, runs: int) -> int:
    """Insert the runs; return the id of the task instance in ``d``'s latest run."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with db.session() as session:
        version = DagVersion(dag_id="d", version_hash="h", serialized={"tasks": {"t": {}}}, created_at=start)
        session.add(version)
        session.flush()
        rows = []
        for dag_id, count in [("d", runs)] + [(f"other{i}", max(1, runs // 10)) for i in range(9)]:
            for i in range(count):
                when = start + timedelta(minutes=i)
                rows.append(
                    {
                        "dag_id": dag_id,
                        "run_id": f"scheduled__{i}",
                        "run_type": "scheduled",
                        "logical_date": when,
                        "data_interval_start": when,
                        "data_interval_end": when,
                        "state": "success",
                        "conf": {},
                        "dag_version_id": version.id,
                        "queued_at": when,
                        "start_date": when,
                        "end_date": when,
                    }
                )
        session.execute(insert(DagRun), rows)
        last = session.scalars(select(DagRun.id).where(DagRun.dag_id == "d").order_by(DagRun.id.desc())).first()
        ti = TaskInstance(dag_run_id=last, dag_id="d", run_id=f"scheduled__{runs - 1}", task_id="t", state="queued")
        session.add(ti)
        session.flush()
        return ti.id


def _time(db: Database, statement: object, params: dict[str, object], repeat: int) -> float:
    with db.engine.connect() as conn:
        conn.execute(statement, params).all()  # type: ignore[call-overload]
        started = time.perf_counter()
        for _ in range(repeat):
            conn.execute(statement, params).all()  # type: ignore[call-overload]
        return (time.perf_counter() - started) / repeat * 1000


def measure(url: str, runs: int, repeat: int) -> None:
    db = Database(url)
    try:
        migrate(db)
        ti_id = _fill(db, runs)
        if not url.startswith("sqlite"):
            with db.session() as session:
                session.execute(text("ANALYZE dag_run"))
        # the same query without the previous run's columns and join
        baseline = (
            select(*_LOAD.selected_columns[:-4])
            .join_from(TaskInstance, DagRun, TaskInstance.dag_run_id == DagRun.id)
            .outerjoin(DagVersion, DagRun.dag_version_id == DagVersion.id)
            .where(TaskInstance.id == bindparam("ti_id"))
        )
        params = {"ti_id": ti_id}
        with_prev = _time(db, _LOAD, params, repeat)
        plain = _time(db, baseline, params, repeat)
        kind = "sqlite" if url.startswith("sqlite") else "postgresql"
        print(
            f"db={kind} runs of the DAG={runs}: claim load query {with_prev:.3f} ms with the previous "
            f"successful run, {plain:.3f} ms without (mean of {repeat})"
        )
    finally:
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            measure(f"sqlite:///{folder}/bench.db", args.runs, args.repeat)
        return
    name = f"headrace_bench_prev_{os.getpid()}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        measure(f"{PG_SERVER}/{name}", args.runs, args.repeat)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
