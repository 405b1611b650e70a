"""The engine's pool settings, the PgBouncer marker and SQLite's busy timeout (headrace.db.engine), on the real
servers."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from headrace.config import load_settings
from headrace.db.engine import SQLITE_BUSY_TIMEOUT, Database, split_pgbouncer, sqlite_busy_timeout
from headrace.db.outage import is_outage
from headrace.exceptions import ConfigError
from tests.pgbouncer import through_pgbouncer


def test_split_pgbouncer_removes_the_marker_and_refuses_a_bad_value() -> None:
    assert split_pgbouncer("postgresql+psycopg://u@h:6432/db?pgbouncer=true") == (
        "postgresql+psycopg://u@h:6432/db",
        True,
    )
    assert split_pgbouncer("postgresql+psycopg://u@h/db?pgbouncer=false&sslmode=disable") == (
        "postgresql+psycopg://u@h/db?sslmode=disable",
        False,
    )
    assert split_pgbouncer("postgresql+psycopg://u@h/db") == ("postgresql+psycopg://u@h/db", False)
    with pytest.raises(ValueError, match="pgbouncer='maybe'"):
        split_pgbouncer("postgresql+psycopg://u@h/db?pgbouncer=maybe")


def _repeat_statements(db: Database, times: int) -> None:
    """Run one parametrized statement ``times`` times on each of three pooled connections at once, so that
    PgBouncer hands each client's transactions to different server connections."""
    with db.engine.connect() as a, db.engine.connect() as b, db.engine.connect() as c:
        for i in range(times):
            for conn in (a, b, c):
                assert conn.execute(text("SELECT CAST(:n AS integer) + 1"), {"n": i}).scalar() == i + 1
                conn.commit()


def test_through_pgbouncer_the_marker_turns_automatic_prepare_off(pg_url: str) -> None:
    """psycopg prepares a statement after its fifth run; through PgBouncer 1.18 in transaction mode the
    prepared statement lands on some server connection and the next client to get it collides. The
    ``?pgbouncer=true`` marker turns the prepare off; without it the same work fails."""
    marked = Database(through_pgbouncer(pg_url), pool_size=3)
    try:
        _repeat_statements(marked, 20)
    finally:
        marked.dispose()
    unmarked = Database(through_pgbouncer(pg_url).removesuffix("?pgbouncer=true"), pool_size=3)
    try:
        with pytest.raises(Exception, match="prepared statement"):
            _repeat_statements(unmarked, 20)
    finally:
        unmarked.dispose()


def test_pool_settings_and_application_name_reach_the_engine(pg_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        {
            "HEADRACE_HOME": str(tmp_path),
            "HEADRACE__DATABASE__URL": pg_url,
            "HEADRACE__DATABASE__POOL_SIZE": "3",
            "HEADRACE__DATABASE__MAX_OVERFLOW": "4",
            "HEADRACE__DATABASE__POOL_RECYCLE": "60",
        }
    )
    db = Database.from_settings(settings, role="scheduler")
    supervisor = Database.from_settings(settings, role="supervisor", single_connection=True)
    try:
        pool = db.engine.pool
        assert (pool.size(), pool._max_overflow, pool._recycle) == (3, 4, 60)  # type: ignore[attr-defined]
        single = supervisor.engine.pool
        assert (single.size(), single._max_overflow) == (1, 0)  # type: ignore[attr-defined]
        with supervisor.engine.connect() as conn:
            assert conn.execute(text("SHOW application_name")).scalar() == "headrace-supervisor"
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as admin:
            row = admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone()
        assert row == ("headrace-supervisor",)
    finally:
        db.dispose()
        supervisor.dispose()


def test_listen_url_must_be_a_direct_postgresql_url(tmp_path: Path) -> None:
    base = {"HEADRACE_HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="database.listen_url.*postgresql://"):
        load_settings({**base, "HEADRACE__DATABASE__LISTEN_URL": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="not one through PgBouncer"):
        load_settings({**base, "HEADRACE__DATABASE__LISTEN_URL": "postgresql://h:6432/db?pgbouncer=true"})
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/x"
    settings = load_settings({**base, "HEADRACE__DATABASE__URL": url + "?pgbouncer=true"})
    assert Database.from_settings(settings, role="cli").wake_url is None
    settings = load_settings(
        {**base, "HEADRACE__DATABASE__URL": url + "?pgbouncer=true", "HEADRACE__DATABASE__LISTEN_URL": url}
    )
    assert Database.from_settings(settings, role="cli").wake_url == url
    assert Database(url).wake_url == url


def test_the_sqlite_busy_timeout_comes_from_the_url_else_the_default() -> None:
    assert sqlite_busy_timeout("sqlite:////tmp/h.db") == SQLITE_BUSY_TIMEOUT == 30.0
    assert sqlite_busy_timeout("sqlite:////tmp/h.db?timeout=2.5") == 2.5
    assert sqlite_busy_timeout("sqlite:////tmp/h.db?timeout=0") == 0.0


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_sqlite_timeout_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"database\.url: timeout='{value}' is not a number of seconds") as info:
        Database(f"sqlite:////tmp/h.db?timeout={value}").engine  # noqa: B018 (the engine is made on first use)
    assert info.value.key == "database.url"


def test_a_sqlite_write_gives_up_after_the_urls_timeout(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(sqlite_template.read_bytes())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
    db = Database(f"sqlite:///{path}?timeout=0.2")
    try:
        with pytest.raises(OperationalError, match="database is locked") as info, db.session() as session:
            session.execute(text("UPDATE pool SET slots = 3"))
        assert is_outage(info.value)  # ridden out by schedulers and supervisors like any lost database
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.dispose()
    with db.session() as session:  # the lock gone, the same URL writes
        session.execute(text("UPDATE pool SET slots = 3"))
    db.dispose()


def _terminate(pg_url: str, backend: int) -> None:
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))


def test_postgresql_read_sessions_run_without_a_transaction(pg_url: str) -> None:
    """A read session is in autocommit on PostgreSQL (no BEGIN, no ROLLBACK round trip); a write session still
    runs in one transaction."""
    db = Database(pg_url, pool_size=1)
    try:
        with db.read_session() as session:
            session.execute(text("SELECT 1"))
            raw = session.connection().connection.driver_connection
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with db.session() as session:
            session.execute(text("SELECT 1"))
            raw = session.connection().connection.driver_connection
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with db.session() as session:  # the pooled connection came back out of autocommit
            session.execute(text("SELECT 1"))
            assert session.connection().connection.driver_connection.autocommit is False
    finally:
        db.dispose()


def test_the_schedulers_pool_pings_only_a_connection_that_sat_idle(pg_url: str) -> None:
    """With ``ping_after_idle`` (the scheduler's), a connection broken while it sat in the pool longer than that
    is found by the ping and replaced, unseen by the caller; one broken within that time fails its next
    statement as an outage the scheduler rides out. Everyone else's pool pings at every checkout."""
    db = Database(pg_url, pool_size=1, max_overflow=0, ping_after_idle=0.3)
    try:
        with db.engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(pg_url, first)
        with db.engine.connect() as conn, pytest.raises(OperationalError) as broken:
            conn.execute(text("SELECT 1"))
        assert is_outage(broken.value)
        with db.engine.connect() as conn:
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
        _terminate(pg_url, second)
        time.sleep(0.5)  # longer than ping_after_idle in the pool: pinged, found broken, replaced
        with db.engine.connect() as conn:
            third = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert third not in (first, second)
    finally:
        db.dispose()
    always = Database(pg_url, pool_size=1, max_overflow=0)
    try:
        with always.engine.connect() as conn:
            fourth = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(pg_url, fourth)
        with always.engine.connect() as conn:  # pinged at once: replaced
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != fourth
    finally:
        always.dispose()
