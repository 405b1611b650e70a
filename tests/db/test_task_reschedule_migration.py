"""Revision 0014 (task_reschedule, task_instance.reschedule_date) goes up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import inspect, text

from headrace.db.engine import Database
from headrace.db.migrate import _alembic_config, migrate

PG_SERVER = os.environ.get("HEADRACE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
BEFORE = "0013"
"""The revision before 0014 on this branch (0013 of the mapping work joins the chain at merge)."""


def _pg_admin_dsn() -> str:
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


ROWS = [
    "INSERT INTO dag_version (id, dag_id, version_hash, serialized, created_at) "
    "VALUES (1, 'd', 'h', '{}', '2026-01-01 00:00:00')",
    "INSERT INTO dag_run (id, dag_id, run_id, run_type, state, conf, dag_version_id, queued_at, callbacks_done) "
    "VALUES (1, 'd', 'r', 'manual', 'running', '{}', 1, '2026-01-01 00:00:00', false)",
    "INSERT INTO task_instance (id, dag_run_id, dag_id, run_id, task_id, state, try_number, max_tries, "
    "priority_weight, pool, pool_slots, queue) VALUES (1, 1, 'd', 'r', 't', 'success', 1, 0, 1, 'p', 1, 'q')",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'h.db'}")
    name = f"headrace_mig0014_{tmp_path.name}"[:60]
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: _drop(name))
    return Database(f"{PG_SERVER}/{name}")


def _drop(name: str) -> None:
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_up_keeps_rows_and_down_fails_waiting_sensors(empty_db: Database) -> None:
    db = empty_db
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, BEFORE)
        for sql in ROWS:
            conn.execute(text(sql))
    migrate(db)
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT state, reschedule_date FROM task_instance")).all() == [("success", None)]
        conn.execute(
            text(
                "INSERT INTO task_instance (id, dag_run_id, dag_id, run_id, task_id, state, try_number, max_tries, "
                "priority_weight, pool, pool_slots, queue, reschedule_date) VALUES (2, 1, 'd', 'r', 'wait', "
                "'up_for_reschedule', 1, 0, 1, 'p', 1, 'q', '2026-01-01 00:01:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO task_reschedule (task_instance_id, dag_id, run_id, task_id, try_number, start_date, "
                "end_date, reschedule_date) VALUES (2, 'd', 'r', 'wait', 1, '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:01', '2026-01-01 00:01:00')"
            )
        )
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT map_index FROM task_reschedule")).scalar() == -1
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":  # as headrace.db.migrate does: batch mode copies, drops and renames
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF").close()  # type: ignore[union-attr]
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, BEFORE)
    with db.engine.connect() as conn:
        assert "task_reschedule" not in inspect(conn).get_table_names()
        assert "reschedule_date" not in {c["name"] for c in inspect(conn).get_columns("task_instance")}
        assert conn.execute(text("SELECT id, state FROM task_instance ORDER BY id")).all() == [
            (1, "success"),
            (2, "failed"),
        ]
        if conn.dialect.name == "sqlite":  # ids never reused survives the table's rebuild (revision 0007)
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'task_instance'")).scalar()
            assert "AUTOINCREMENT" in str(sql)
    migrate(db)  # and up again
    db.dispose()
