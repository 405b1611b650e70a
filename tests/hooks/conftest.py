"""Fixtures of the hook tests: the real databases a SQL hook talks to, and connections stored in the metadata DB.

Targets: the PostgreSQL and the MariaDB running on this machine (database ``test``) and a SQLite file.
Each test gets its own table name, so tests running at once on the shared servers never meet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from headrace.authoring.secrets import Connection, install_secrets_runtime
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.hooks.urls import sqlalchemy_url
from headrace.secrets_store import DatabaseSecrets, set_connection

MARIADB = Connection(
    conn_id="mariadb_test", conn_type="mysql", host="127.0.0.1", port=3306, login="root", schema="test"
)
POSTGRES = Connection(
    conn_id="postgres_test", conn_type="postgres", host="127.0.0.1", port=5432, login="postgres", schema="test"
)


@dataclass
class Target:
    """One database a hook is tested against."""

    name: str
    conn: Connection
    table: str
    """A table name of this test's own (dropped afterwards)."""
    placeholder: str
    """The driver's positional placeholder."""


def sqlite_connection(path: Path, conn_id: str = "sqlite_test") -> Connection:
    return Connection(conn_id=conn_id, conn_type="sqlite", host=str(path))


def drop_table(conn: Connection, table: str) -> None:
    engine = create_engine(sqlalchemy_url(conn))
    try:
        with engine.begin() as c:
            c.execute(text(f"DROP TABLE IF EXISTS {table}"))
    finally:
        engine.dispose()


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A real database to run SQL on: PostgreSQL, MariaDB or SQLite, with a fresh table name."""
    table = f"hr_{uuid.uuid4().hex[:12]}"
    conn = {
        "postgres": POSTGRES,
        "mariadb": MARIADB,
        "sqlite": sqlite_connection(tmp_path / "target.db"),
    }[request.param]
    yield Target(request.param, conn, table, "?" if request.param == "sqlite" else "%s")
    drop_table(conn, table)


def store_connections(settings: Settings, db: Database, *conns: Connection) -> None:
    """Write ``conns`` into the metadata DB (encrypted), as ``headrace connections add`` does."""
    encryptor = Encryptor.from_settings(settings)
    with db.session() as session:
        for conn in conns:
            set_connection(session, encryptor, conn)


@pytest.fixture
def secrets(settings: Settings, db: Database) -> Iterator[None]:
    """``Connection.get`` served from the metadata DB in this process (as ``headrace tasks test`` does)."""
    install_secrets_runtime(DatabaseSecrets(db, Encryptor.from_settings(settings)))
    yield
    install_secrets_runtime(None)
