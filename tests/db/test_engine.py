"""The engine's pool settings and the PgBouncer marker (headrace.db.engine), on the real servers."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from headrace.config import load_settings
from headrace.db.engine import Database, split_pgbouncer
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
