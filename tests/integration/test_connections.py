"""How many connections a host's supervisors hold: one each (``Database.from_settings(single_connection=True)``).

A worker host running N tries at once holds at most N + 1 connections to the
metadata database: one per supervisor (pool of one, no overflow) and one of
the fork server that starts them (it warms its engine, then closes its
connection before each fork). docs/executors.md gives the sizing this bounds.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.testing import run_scheduler_until

from .helpers import FAST, parse_and_trigger, run_states, write_dag

TRIES = 6


def _supervisor_connections(dsn: str) -> int:
    """Connections of this database whose application_name is a supervisor's (``headrace-supervisor``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'headrace-supervisor'"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_tries_hold_one_connection_each(settings: Settings, db: Database, tmp_path: Path) -> None:
    settings = settings.with_overrides({**FAST, "core": {**FAST["core"], "parallelism": TRIES}})
    go = tmp_path / "go"
    write_dag(
        settings,
        "wide.py",
        f"""
        import os, time
        from headrace import DAG, task

        with DAG("wide", schedule=None):
            @task
            def wait(i):
                open({str(tmp_path)!r} + f"/started-{{i}}", "w").close()
                deadline = time.monotonic() + 60
                while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
                    time.sleep(0.05)
                return i

            for i in range({TRIES}):
                wait.override(task_id=f"w{{i}}")(i)
        """,
    )
    dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    # The session's database is shared by this xdist worker's tests: supervisors of an earlier test may still
    # be finishing (detached, they outlive their test). Those count apart.
    earlier = _supervisor_connections(dsn)
    parse_and_trigger(settings, db, "wide")
    counts: list[int] = []

    def sample(_now: datetime) -> None:
        if go.exists() or len(list(tmp_path.glob("started-*"))) < TRIES:
            return
        counts.append(_supervisor_connections(dsn))  # every try is running: each supervisor heartbeats
        if len(counts) >= 5:
            go.touch()

    assert run_scheduler_until(
        settings,
        db,
        lambda: set(run_states(db).values()) == {"success"},
        each_loop=sample,
        processor=DagProcessor(settings, db),
        timeout=90,
    )
    assert len(counts) >= 5, counts
    print(f"supervisor connections with {TRIES} tries running: {counts}")
    assert max(counts) <= earlier + TRIES + 1, (earlier, counts)  # one per supervisor, one for the fork server
    assert min(counts) >= TRIES, (earlier, counts)  # and every running supervisor holds its one
