"""Revision 0015 (assets) goes up (its tables take rows), down (they are gone, the revision is 0012) and up
again, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from headrace.db.engine import Database
from headrace.db.migrate import _alembic_config, migrate
from tests.db.test_map_index_migration import empty_db as empty_db  # noqa: F401 - the fixture

ASSET_TABLES = {
    "asset",
    "asset_alias",
    "asset_alias_asset",
    "asset_event",
    "asset_dag_run_queue",
    "dagrun_asset_event",
    "dag_schedule_asset_reference",
    "dag_schedule_asset_alias_reference",
    "task_outlet_asset_reference",
    "task_inlet_asset_reference",
}


def _tables(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_up_down_up(empty_db: Database) -> None:  # noqa: F811 - the imported fixture
    db = empty_db
    migrate(db)
    assert _tables(db) >= ASSET_TABLES
    with db.engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO asset (id, name, uri, "group", extra, created_at, updated_at) '
                "VALUES (1, 'a', 's3://a', 'asset', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO asset_event (asset_id, extra, source_map_index, timestamp) "
                "VALUES (1, '{}', -1, '2026-01-01 00:00:00')"
            )
        )
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0014")
    assert not (ASSET_TABLES & _tables(db))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0014"
    migrate(db)
    assert _tables(db) >= ASSET_TABLES
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM asset")).scalar() == 0
    db.dispose()
