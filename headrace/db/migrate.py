"""Create, upgrade and reset the metadata database schema with Alembic.

``migrate(db)`` brings the schema to the newest revision and makes sure
``default_pool`` exists; ``reset(db)`` drops every table and migrates again.
``check_migrated(db)`` raises ``DatabaseError`` with the command to run when
the schema is missing or behind.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from headrace.db.engine import Database
from headrace.db.models import Base, Pool
from headrace.exceptions import DatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest revision id shipped with this headrace."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(db: Database, *, default_pool_slots: int = 128) -> str:
    """Upgrade the schema to the newest revision; return that revision id."""
    cfg = _alembic_config()
    with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild a table by copy, drop and rename; with foreign keys on, the drop
            # of a parent would cascade to its children. The pragma is a no-op inside a transaction,
            # so it goes to the driver before SQLAlchemy begins one.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF").close()  # type: ignore[union-attr]
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise DatabaseError("the migration left rows whose foreign key names no row; rolled back")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON").close()  # type: ignore[union-attr]
    with db.session() as session:
        if session.scalar(select(Pool).where(Pool.name == "default_pool")) is None:
            session.add(Pool(name="default_pool", slots=default_pool_slots, description="Default pool"))
    return head_revision()


def reset(db: Database, *, default_pool_slots: int = 128) -> str:
    """Drop every headrace table (and Alembic's version table), then migrate."""
    with db.engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    return migrate(db, default_pool_slots=default_pool_slots)


def check_migrated(db: Database) -> None:
    """Raise ``DatabaseError`` unless the schema is at the newest revision."""
    try:
        current = current_revision(db)
    except Exception as exc:  # driver errors: unreachable server, bad URL
        raise DatabaseError(f"cannot reach the metadata database {db.engine.url!r}: {exc}") from exc
    if current != head_revision():
        tables = inspect(db.engine).get_table_names()
        what = "is empty" if not tables else f"is at revision {current}, not {head_revision()}"
        raise DatabaseError(f"the metadata database {what}; run `headrace db migrate`")
