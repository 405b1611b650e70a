"""Issue 13: a database outage mid-run loses no outcome and runs nothing twice.

A real scheduler (subprocess, LocalExecutor, real supervisors) runs two DAGs
with ``retries=0`` — a chain, where each task starts after the previous one
ended, and a fan of tasks that end together — while the database goes away:
a PostgreSQL fast restart (twice), a PostgreSQL stop of 10 s, a SQLite write
lock held for 10 s (the busy timeout is 3 s here, the URL's ``timeout``; 30 s
by default). Each outage outlasts the tasks running when it began and several
retries (backoff 0.1 s doubling to 5 s). Tasks that end during the outage keep
their outcome until the database is back; the scheduler waits and reconnects.
Both runs must succeed (a lost outcome would become a
zombie, and with ``retries=0`` a failed run) and every task's code must have
run to its end exactly once. The same fast restart happens with the scheduler
and its supervisors connected through PgBouncer in transaction mode.

Every test here that takes PostgreSQL away holds ``pg_fault_lock`` meanwhile: no two such outages overlap
on this machine.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.scheduler.runs import trigger_dag
from tests.pgbouncer import PgBouncerProcess

from .pgcluster import PgCluster
from .scenario import FAULT, count, counting_dag, finished, run_states, start_scheduler, stop_scheduler, try_rows


def run_through(settings: Settings, db: Database, tmp_path: Path, outage: Callable[[], None]) -> str:
    """Start both DAGs, call ``outage()`` once tasks are running, wait for the runs; return the scheduler log."""
    out = tmp_path / "out"
    chain = counting_dag(settings, "chain", out / "chain", tasks=6, seconds=1.5, chain=True, retries=0)
    fan = counting_dag(settings, "fan", out / "fan", tasks=6, seconds=3, retries=0)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        runs = {trigger_dag(session, dag_id, now=datetime.now(UTC)).run_id for dag_id in ("chain", "fan")}
    log = tmp_path / "scheduler.log"
    scheduler = start_scheduler(settings, log)
    try:
        deadline = time.monotonic() + 60
        # The fan's tasks are mid-work and the chain has begun: the outage catches both.
        while not (all(count(out / "fan" / f"{t}.started") for t in fan) and count(out / "chain" / "t1.started")):
            assert time.monotonic() < deadline, f"tasks did not start; log:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        outage()
        deadline = time.monotonic() + 120
        while not finished(db):
            assert scheduler.poll() is None, f"the scheduler died:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"runs not finished: {run_states(db)}\n{log.read_text()[-4000:]}"
            time.sleep(0.2)
    finally:
        stop_scheduler(scheduler, log)
    assert run_states(db) == {r: "success" for r in runs}, log.read_text()[-4000:]
    for dag_id, ids in (("chain", chain), ("fan", fan)):
        for task_id in ids:
            assert count(out / dag_id / f"{task_id}.done") == 1, (
                f"{dag_id}.{task_id} ran {count(out / dag_id / f'{task_id}.done')} times"
            )
            assert count(out / dag_id / f"{task_id}.started") == 1, f"{dag_id}.{task_id} started twice"
    assert {(tt.dag_id, tt.task_id): tt.try_number for tt in try_rows(db)} == {
        (dag_id, t): 1 for dag_id, ids in (("chain", chain), ("fan", fan)) for t in ids
    }
    return log.read_text()


def test_postgresql_fast_restart_mid_run(
    fault_settings: Settings,
    fault_db: Database,
    fault_pg: PgCluster | None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if fault_pg is None:
        pytest.skip(
            "a PostgreSQL restart (SQLite's outage is a held lock: test_sqlite_lock_held_past_the_busy_timeout)"
        )
    request.getfixturevalue("pg_fault_lock")  # no other outage on this machine meanwhile
    settings = fault_settings.with_overrides(FAULT)

    started: list[object] = []

    def server_start() -> object:
        with psycopg.connect(fault_pg.dsn()) as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
            assert row is not None
            return row[0]

    def restart_twice() -> None:
        started.append(server_start())
        fault_pg.restart("fast")
        time.sleep(1.5)  # the fan's tasks end meanwhile, the chain moves on
        fault_pg.restart("fast")
        started.append(server_start())

    run_through(settings, fault_db, tmp_path, restart_twice)
    # The server really went away mid-run (whether the scheduler noticed depends on where its
    # connections were during the 0.3 s restart: pool_pre_ping may reconnect silently).
    assert started[1] != started[0]


@pytest.mark.parametrize("fault_backend", ["postgresql"], indirect=True)
def test_postgresql_restart_through_pgbouncer_mid_run(
    fault_settings: Settings, fault_db: Database, fault_pg: PgCluster | None, tmp_path: Path, pg_fault_lock: None
) -> None:
    """The scheduler and every supervisor reach the database through PgBouncer (transaction mode,
    ``?pgbouncer=true``); PostgreSQL is stopped for 3 s behind it and started again. PgBouncer stays up:
    its clients see their transactions fail or wait, retry with backoff, and the runs finish."""
    assert fault_pg is not None
    bouncer = PgBouncerProcess(fault_pg.base_dir, fault_pg.port)
    bouncer.start()
    try:
        dbname = fault_db.engine.url.database
        assert dbname
        settings = fault_settings.with_overrides(
            {**FAULT, "database": {**FAULT["database"], "url": bouncer.url(dbname)}}
        )

        def restart_behind_pgbouncer() -> None:
            fault_pg.stop("fast")
            time.sleep(3)  # tasks end meanwhile; their supervisors keep the outcome until it is back
            fault_pg.start()

        text = run_through(settings, fault_db, tmp_path, restart_behind_pgbouncer)
        assert "through PgBouncer" in text  # the scheduler said it polls: no listen_url
        assert f"login attempt: db={dbname}" in bouncer.log()  # the scheduler and supervisors came through it
        # Supervisors heartbeat every 0.5 s: during the 3 s some failed, through PgBouncer, and went on.
        assert "heartbeat of task_try" in text and "the database is back" in text, text[-4000:]
    finally:
        bouncer.stop()


PG_STOP = 10.0
"""Seconds PostgreSQL stays stopped: past the longest task running when it stops (3 s) and past the longest
retry interval (5 s), so the scheduler and the supervisors fail, back off and retry several times."""
SQLITE_LOCK = 10.0
"""Seconds the SQLite write lock is held: three busy timeouts (:data:`SQLITE_BUSY`) and more, past the longest
task running when it is taken (3 s)."""
SQLITE_BUSY = 3.0
"""The busy timeout of the SQLite outage test (the URL's ``timeout``), in seconds."""


@pytest.mark.timeout(300)
def test_postgresql_stopped_mid_run(
    fault_settings: Settings,
    fault_db: Database,
    fault_pg: PgCluster | None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if fault_pg is None:
        pytest.skip("a PostgreSQL stop (SQLite's outage is a held lock: test_sqlite_lock_held_past_the_busy_timeout)")
    request.getfixturevalue("pg_fault_lock")  # no other outage on this machine meanwhile
    settings = fault_settings.with_overrides(FAULT)

    def stop() -> None:
        fault_pg.stop("fast")
        time.sleep(PG_STOP)  # every running task ends in the gap and must keep its outcome
        fault_pg.start()

    text = run_through(settings, fault_db, tmp_path, stop)
    assert "lost the database" in text and "the database is back" in text
    tries = list((settings.base_log_folder).rglob("*.log"))
    assert any("kept it in" in p.read_text() for p in tries), "no supervisor had to keep its outcome on disk"
    assert not list((settings.home / "pending_outcomes").glob("*.json"))  # all written since


@pytest.mark.timeout(300)
def test_sqlite_lock_held_past_the_busy_timeout(
    fault_settings: Settings, fault_db: Database, fault_backend: str, tmp_path: Path
) -> None:
    if fault_backend != "sqlite":
        pytest.skip("a SQLite file lock (PostgreSQL's outages: restart and stop)")
    path = fault_db.engine.url.database
    assert path
    # the scheduler, its supervisors and this test's own Database all open the URL with the short busy timeout
    settings = fault_settings.with_overrides(
        {**FAULT, "database": {**FAULT["database"], "url": f"sqlite:///{path}?timeout={SQLITE_BUSY:g}"}}
    )
    db = Database(settings.database_url)
    held = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        conn.execute("BEGIN IMMEDIATE")  # the write lock: every other writer waits, then fails after SQLITE_BUSY
        held.set()
        time.sleep(SQLITE_LOCK)
        conn.execute("COMMIT")
        conn.close()

    def lock() -> None:
        holder = threading.Thread(target=hold_lock)
        holder.start()
        held.wait(60)
        holder.join()

    try:
        text = run_through(settings, db, tmp_path, lock)
    finally:
        db.dispose()
    assert "lost the database" in text and "the database is back" in text


def test_a_supervisor_cut_off_from_the_database_stops_its_task(
    fault_settings: Settings,
    fault_db: Database,
    fault_pg: PgCluster | None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A scheduler on another host would retry a try whose heartbeat is older than
    ``task_instance_heartbeat_timeout``: a supervisor that cannot heartbeat for 0.8 of it kills its task,
    and records the try when the database is back, so the two never run at once."""
    if fault_pg is None:
        pytest.skip("needs a database that refuses connections at once (SQLite's lock blocks for the busy timeout)")
    request.getfixturevalue("pg_fault_lock")  # no other outage on this machine meanwhile
    settings = fault_settings.with_overrides(
        {**FAULT, "scheduler": {**FAULT["scheduler"], "task_instance_heartbeat_timeout": 3}}
    )
    out = tmp_path / "out"
    ids = counting_dag(settings, "long", out, tasks=1, seconds=30, retries=0, bash_every=0)
    assert DagProcessor(settings, fault_db).refresh(datetime.now(UTC)).errors == 0
    with fault_db.session() as session:
        run_id = trigger_dag(session, "long", now=datetime.now(UTC)).run_id
    log = tmp_path / "scheduler.log"
    scheduler = start_scheduler(settings, log)
    try:
        deadline = time.monotonic() + 60
        while not count(out / f"{ids[0]}.started"):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        fault_pg.stop("fast")
        time.sleep(6)  # past 0.8 x 3 s without a heartbeat
        fault_pg.start()
        deadline = time.monotonic() + 60
        while not finished(fault_db):
            assert time.monotonic() < deadline, f"{run_states(fault_db)}\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        stop_scheduler(scheduler, log)
    assert run_states(fault_db) == {run_id: "failed"}
    [tt] = try_rows(fault_db)
    assert tt.end_reason == "zombie" and "no heartbeat reached the database" in (tt.error or "")
    assert count(out / f"{ids[0]}.done") == 0  # stopped, not left running beside a possible retry
