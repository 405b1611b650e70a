"""Revision 0018 (dag_version_task) writes the task rows of versions that exist, on SQLite and PostgreSQL; a
version added afterwards through the ORM gets its rows in the same flush; the claim reads them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import select, text

from headrace.db.engine import Database
from headrace.db.migrate import _alembic_config, migrate
from headrace.db.models import DagVersion, DagVersionTask

PG_SERVER = os.environ.get("HEADRACE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DOCUMENT = {"dag_id": "d", "tasks": {"a": {"task_id": "a", "retries": 2}, "b": {"task_id": "b", "pool": "p"}}}


def _pg_admin_dsn() -> str:
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'h.db'}")
    name = f"headrace_mig0018_{tmp_path.name}"[:60]
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: _drop(name))
    return Database(f"{PG_SERVER}/{name}")


def _drop(name: str) -> None:
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_existing_versions_get_their_task_rows_and_new_ones_theirs(empty_db: Database) -> None:
    db = empty_db
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0017")
        conn.execute(
            text(
                "INSERT INTO dag_version (id, dag_id, version_hash, serialized, created_at) "
                "VALUES (101, 'd', 'h1', :doc, '2026-01-01 00:00:00'), (102, 'e', 'h2', '{}', '2026-01-01 00:00:00')"
            ),
            {"doc": json.dumps(DOCUMENT)},
        )
    migrate(db)
    with db.session() as session:
        rows = session.execute(select(DagVersionTask.dag_version_id, DagVersionTask.task_id, DagVersionTask.serialized))
        assert sorted(rows, key=lambda r: r[1]) == [
            (101, "a", DOCUMENT["tasks"]["a"]),
            (101, "b", DOCUMENT["tasks"]["b"]),
        ]
        version = DagVersion(dag_id="d", version_hash="h3", serialized=DOCUMENT, created_at=datetime.now(UTC))
        session.add(version)
        session.flush()
        new_rows = session.scalars(select(DagVersionTask.task_id).where(DagVersionTask.dag_version_id == version.id))
        assert sorted(new_rows) == ["a", "b"]
        new_id = version.id
        session.delete(version)
    with db.engine.connect() as conn:  # the version's rows go with it (ON DELETE CASCADE; SQLite: foreign_keys=ON)
        left = conn.execute(text("SELECT count(*) FROM dag_version_task WHERE dag_version_id = :v"), {"v": new_id})
        assert left.scalar() == 0
