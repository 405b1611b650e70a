"""Ids held outside the database are never handed out again (SQLite: AUTOINCREMENT, revision 0007).

Without it SQLite gives a deleted row's id, when it was the largest, to the next row: a deleted user's
cookie, URL or API token id then named the next user's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text

from headrace.api.users import create_user, delete_user, get_user
from headrace.db.engine import Database
from headrace.db.migrate import _alembic_config, migrate

TABLES = ("user", "api_token", "import_error", "dag_run", "task_instance", "task_try", "scheduler_job")


def test_deleted_users_id_goes_to_no_one_else(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        create_user(session, "first", "password-1", "viewer", now=now)
        gone = create_user(session, "last", "password-1", "viewer", now=now).id
    with db.session() as session:
        delete_user(session, get_user(session, "last"))
    with db.session() as session:
        assert create_user(session, "next", "password-1", "operator", now=now).id > gone


def test_sqlite_tables_use_autoincrement(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(db)
    with db.engine.connect() as conn:
        sql = {
            name: ddl for name, ddl in conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        }
    db.dispose()
    assert [t for t in TABLES if "AUTOINCREMENT" not in sql[t]] == []


def test_upgrade_to_0007_keeps_every_row(tmp_path: Path) -> None:
    """Rebuilding ``user`` must not cascade to ``api_token`` (foreign keys are off while batch mode copies)."""
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(
            text(
                "INSERT INTO user (id, username, password_hash, role, is_active, created_at) VALUES "
                "(1, 'a', 'x', 'viewer', 1, '2026-01-01 00:00:00'), (2, 'b', 'x', 'admin', 1, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO api_token (user_id, name, token_hash, prefix, created_at) "
                "VALUES (2, 'ci', 'h', 'hr_', '2026-01-01 00:00:00')"
            )
        )
    migrate(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT user_id FROM api_token")).scalars().all() == [2]
        assert conn.execute(text("SELECT id FROM user ORDER BY id")).scalars().all() == [1, 2]
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1  # back on for this pooled connection
    with db.session() as session:
        delete_user(session, get_user(session, "b"))
    with db.session() as session:
        assert create_user(session, "c", "password-1", "viewer", now=datetime.now(UTC)).id == 3
    db.dispose()
