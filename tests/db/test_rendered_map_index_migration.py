"""Revision 0013 up and down on SQLite and PostgreSQL: ``task_instance.rendered_map_index`` appears empty for the
rows there are, takes a label, and goes again without losing a row or the task instance key."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from headrace.db.engine import Database
from headrace.db.migrate import _alembic_config, migrate
from tests.db.test_map_index_migration import ROWS, empty_db  # noqa: F401 - the fixture, on both databases

INSERT_TI = (
    "INSERT INTO task_instance (id, dag_run_id, dag_id, run_id, task_id, map_index, state, try_number, max_tries, "
    "priority_weight, pool, pool_slots, queue) VALUES ({id}, 1, 'd', 'r', 't', 0, 'none', 0, 0, 1, 'p', 1, 'q')"
)


def test_rendered_map_index_up_and_down(empty_db: Database) -> None:  # noqa: F811
    db = empty_db
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0012")
        for sql in ROWS:
            conn.execute(text(sql))
        conn.execute(text(INSERT_TI.format(id=2)))
    migrate(db)
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT rendered_map_index FROM task_instance ORDER BY id")).scalars().all() == [
            None,
            None,
        ]
        conn.execute(text("UPDATE task_instance SET rendered_map_index = :label WHERE id = 2"), {"label": "x" * 250})
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":  # as headrace.db.migrate does: batch mode copies, drops and renames
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF").close()  # type: ignore[union-attr]
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0012")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT id, map_index FROM task_instance ORDER BY id")).all() == [(1, -1), (2, 0)]
        assert "rendered_map_index" not in list(conn.execute(text("SELECT * FROM task_instance")).keys())
    with pytest.raises(IntegrityError), db.engine.begin() as conn:  # the (run, task, map index) key is still there
        conn.execute(text(INSERT_TI.format(id=3)))
    migrate(db)  # and up again
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM task_instance WHERE rendered_map_index IS NULL")).scalar() == 2
    db.dispose()
