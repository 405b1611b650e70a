"""The private PostgreSQL cluster fixture works: reachable, survives restart and stop/start."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Pool
from tests.faults.pgcluster import PG_FAULT_LOCK, PgCluster


def test_cluster_is_private_and_ready(pg_cluster: PgCluster) -> None:
    assert pg_cluster.port != 5432
    assert pg_cluster.is_running()
    assert pg_cluster.is_ready()
    assert pg_cluster.url("x") == f"postgresql+psycopg://postgres@127.0.0.1:{pg_cluster.port}/x"


def test_migrated_db_reachable_through_database(private_pg_url: str, pg_cluster: PgCluster) -> None:
    assert f":{pg_cluster.port}/t_" in private_pg_url
    database = Database(private_pg_url)
    try:
        with database.read_session() as session:
            assert session.scalar(select(Pool.slots).where(Pool.name == "default_pool")) == 128
            assert session.scalar(select(func.current_setting("fsync"))) == "off"
    finally:
        database.dispose()


def test_restart_drops_connections_then_reachable(private_pg_url: str, pg_cluster: PgCluster) -> None:
    database = Database(private_pg_url)
    try:
        with database.engine.connect() as conn:
            pid_before = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            pg_cluster.restart("fast")
            assert pg_cluster.is_ready()
            with pytest.raises(DBAPIError) as excinfo:
                conn.execute(text("SELECT 1"))
            assert excinfo.value.connection_invalidated
        # The pool's pre-ping replaces the dead connection: the same Database works again.
        with database.session() as session:
            assert session.scalar(select(func.count()).select_from(Pool)) == 1
            assert session.scalar(text("SELECT pg_backend_pid()")) != pid_before
    finally:
        database.dispose()


def test_stop_then_start(private_pg_url: str, pg_cluster: PgCluster) -> None:
    pg_cluster.stop()
    assert not pg_cluster.is_ready()
    assert not pg_cluster.is_running()
    pg_cluster.stop()  # already stopped: a no-op
    pg_cluster.start()
    assert pg_cluster.is_ready()
    database = Database(private_pg_url)
    try:
        with database.read_session() as session:
            assert session.scalar(select(func.count()).select_from(Pool)) == 1
    finally:
        database.dispose()


def test_stopped_cluster_restarted_by_fixture(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> None:
    pg_cluster.stop("immediate")  # a crash: the next start runs recovery
    url: str = request.getfixturevalue("private_pg_url")
    assert pg_cluster.is_ready()
    database = Database(url)
    try:
        with database.read_session() as session:
            assert session.scalar(select(func.count()).select_from(Pool)) == 1
    finally:
        database.dispose()


def test_fault_fixtures(
    fault_backend: str, fault_pg: PgCluster | None, fault_db_url: str, fault_settings: Settings, fault_db: Database
) -> None:
    assert fault_settings.database_url == fault_db_url == fault_db.url
    assert fault_db.is_sqlite == (fault_backend == "sqlite")
    if fault_backend == "postgresql":
        assert fault_pg is not None
        assert f"127.0.0.1:{fault_pg.port}/" in fault_db_url
    else:
        assert fault_pg is None
    with fault_db.session() as session:
        assert session.scalar(select(Pool.slots).where(Pool.name == "default_pool")) == 128


def test_start_failure_is_clear(pg_cluster: PgCluster) -> None:
    # A second cluster on a port that is taken: start() fails with the server log in the message.
    base = Path(tempfile.mkdtemp(prefix="headrace-pg-clash-", dir="/tmp"))
    other = PgCluster.create(base, port=pg_cluster.port)
    try:
        with pytest.raises(RuntimeError, match="could not bind|could not create"):
            other.start(timeout=10)
    finally:
        other.destroy()
    assert not base.exists()


def test_pg_fault_lock_keeps_other_processes_out(pg_fault_lock: None) -> None:
    """While a test holds ``pg_fault_lock``, another process (another xdist worker, another session) cannot."""
    probe = (
        "import fcntl, sys\n"
        f"f = open({str(PG_FAULT_LOCK)!r}, 'a')\n"
        "try:\n"
        "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 3
