"""Revision 0010: rows written before it get ``map_index = -1``; the task instance key includes the map index."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from headrace.db.engine import Database
from headrace.db.migrate import _alembic_config, migrate

PG_SERVER = os.environ.get("HEADRACE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _pg_admin_dsn() -> str:
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


ROWS = [
    "INSERT INTO dag_version (id, dag_id, version_hash, serialized, created_at) "
    "VALUES (1, 'd', 'h', '{}', '2026-01-01 00:00:00')",
    "INSERT INTO dag_run (id, dag_id, run_id, run_type, state, conf, dag_version_id, queued_at, callbacks_done) "
    "VALUES (1, 'd', 'r', 'manual', 'running', '{}', 1, '2026-01-01 00:00:00', false)",
    "INSERT INTO task_instance (id, dag_run_id, dag_id, run_id, task_id, state, try_number, max_tries, "
    "priority_weight, pool, pool_slots, queue) VALUES (1, 1, 'd', 'r', 't', 'success', 1, 0, 1, 'p', 1, 'q')",
    "INSERT INTO task_try (task_instance_id, dag_id, run_id, task_id, try_number, state, hostname, supervisor_pid, "
    "supervisor_start_time, start_date, heartbeat_at, log_path) "
    "VALUES (1, 'd', 'r', 't', 1, 'success', 'h', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'l')",
    "INSERT INTO xcom (dag_run_id, dag_id, run_id, task_id, key, value, created_at) "
    "VALUES (1, 'd', 'r', 't', 'return_value', '[1, 2]', '2026-01-01 00:00:00')",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'h.db'}")
    name = f"headrace_mig0010_{tmp_path.name}"[:60]
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: _drop(name))
    return Database(f"{PG_SERVER}/{name}")


def _drop(name: str) -> None:
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_existing_rows_get_minus_one_and_the_key_takes_the_map_index(empty_db: Database) -> None:
    db = empty_db
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011")
        for sql in ROWS:
            conn.execute(text(sql))
    migrate(db)
    with db.engine.connect() as conn:
        for table in ("task_instance", "task_try", "xcom"):
            assert conn.execute(text(f"SELECT map_index FROM {table}")).scalars().all() == [-1]
    with db.engine.begin() as conn:  # another index of the same task in the same run is a new row
        conn.execute(
            text(
                "INSERT INTO task_instance (id, dag_run_id, dag_id, run_id, task_id, map_index, state, try_number, "
                "max_tries, priority_weight, pool, pool_slots, queue) VALUES (2, 1, 'd', 'r', 't', 0, 'none', 0, 0, "
                "1, 'p', 1, 'q')"
            )
        )
    with pytest.raises(IntegrityError), db.engine.begin() as conn:  # the same index twice is not
        conn.execute(
            text(
                "INSERT INTO task_instance (id, dag_run_id, dag_id, run_id, task_id, map_index, state, try_number, "
                "max_tries, priority_weight, pool, pool_slots, queue) VALUES (3, 1, 'd', 'r', 't', 0, 'none', 0, 0, "
                "1, 'p', 1, 'q')"
            )
        )
    with db.engine.connect() as conn:  # and back down: the expanded index goes, the unmapped row stays
        if conn.dialect.name == "sqlite":  # as headrace.db.migrate does: batch mode copies, drops and renames
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF").close()  # type: ignore[union-attr]
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0011")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT id, task_id FROM task_instance")).all() == [(1, "t")]
        assert conn.execute(text("SELECT count(*) FROM task_try")).scalar() == 1
    db.dispose()
