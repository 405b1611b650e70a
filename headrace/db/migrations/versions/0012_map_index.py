"""map_index on task_instance, task_try and xcom; the task_map table (dynamic task mapping)

Revision ID: 0012
Revises: 0011

A task instance is ``(dag_run_id, task_id, map_index)`` from here on, as in
Airflow: existing rows get ``map_index = -1`` (not mapped). XComs are keyed by
the pushing task instance's map index too, and tries carry it. ``task_map``
records the length of a value pushed for a mapped task downstream to expand
over. The unique keys of 0001 were created unnamed; on SQLite batch mode
names them by a convention so they can be dropped (and keeps ``AUTOINCREMENT``
on the tables 0007 rebuilt with it); on PostgreSQL they carry the server's
default names.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
"""Names batch mode gives the unnamed unique keys it reflects from SQLite."""

_OLD_KEYS = {"task_instance": ("dag_run_id", "task_id"), "xcom": ("dag_run_id", "task_id", "key")}
_NEW_KEYS = {
    "task_instance": ("dag_run_id", "task_id", "map_index"),
    "xcom": ("dag_run_id", "task_id", "map_index", "key"),
}


def _key_name(table: str, columns: tuple[str, ...], sqlite: bool) -> str:
    if sqlite:
        return f"uq_{table}_{'_'.join(columns)}"
    return f"{table}_{'_'.join(columns)}_key"  # PostgreSQL's own name for an unnamed UNIQUE


def _map_index_column() -> sa.Column[int]:
    return sa.Column("map_index", sa.Integer(), server_default="-1", nullable=False)


def _rekey(table: str, old: tuple[str, ...], new: tuple[str, ...], *, add: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    kwargs: dict[str, Any] = {"naming_convention": _CONVENTION} if sqlite else {}
    if sqlite and table == "task_instance":
        kwargs["table_kwargs"] = {"sqlite_autoincrement": True}
        kwargs["recreate"] = "always"
    with op.batch_alter_table(table, **kwargs) as batch_op:
        batch_op.drop_constraint(_key_name(table, old, sqlite), type_="unique")
        if add:
            batch_op.add_column(_map_index_column())
        else:
            batch_op.drop_column("map_index")
        batch_op.create_unique_constraint(_key_name(table, new, sqlite) if sqlite else None, list(new))  # type: ignore[arg-type]


def _batch_try_table(sqlite: bool) -> Any:
    """``task_try`` in batch mode; on SQLite rebuilt keeping ``AUTOINCREMENT`` (revision 0007)."""
    if sqlite:
        return op.batch_alter_table("task_try", recreate="always", table_kwargs={"sqlite_autoincrement": True})
    return op.batch_alter_table("task_try")


def upgrade() -> None:
    for table in ("task_instance", "xcom"):
        _rekey(table, _OLD_KEYS[table], _NEW_KEYS[table], add=True)
    sqlite = op.get_bind().dialect.name == "sqlite"
    with _batch_try_table(sqlite) as batch_op:
        batch_op.add_column(_map_index_column())
    op.create_table(
        "task_map",
        sa.Column("dag_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["dag_run_id"], ["dag_run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dag_run_id", "task_id", "map_index"),
    )


def downgrade() -> None:
    op.drop_table("task_map")
    sqlite = op.get_bind().dialect.name == "sqlite"
    with _batch_try_table(sqlite) as batch_op:
        batch_op.drop_column("map_index")
    op.execute("DELETE FROM xcom WHERE map_index >= 0")
    op.execute("DELETE FROM task_instance WHERE map_index >= 0")
    for table in ("task_instance", "xcom"):
        _rekey(table, _NEW_KEYS[table], _OLD_KEYS[table], add=False)
