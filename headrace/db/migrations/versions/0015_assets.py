"""Assets (data-aware scheduling): assets, aliases, events, the asset DAG-run queue and the references

Revision ID: 0015
Revises: 0012 (0014 once the sensors and mapping revisions are merged before it)

See :mod:`headrace.db.asset_models` for what each table holds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AUTOINCREMENT = {"sqlite_autoincrement": True}


def _fk(column: str, target: str) -> sa.Column[int]:
    return sa.Column(column, _ID, sa.ForeignKey(target, ondelete="CASCADE"), primary_key=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(1500), nullable=False),
        sa.Column("uri", sa.String(1500), nullable=False),
        sa.Column("group", sa.String(1500), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", "uri"),
        **_AUTOINCREMENT,
    )
    op.create_index("ix_asset_uri", "asset", ["uri"])
    op.create_table(
        "asset_alias",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(1500), nullable=False, unique=True),
        sa.Column("group", sa.String(1500), nullable=False),
    )
    op.create_table("asset_alias_asset", _fk("alias_id", "asset_alias.id"), _fk("asset_id", "asset.id"))
    for table, ref in (
        ("dag_schedule_asset_reference", ("asset_id", "asset.id")),
        ("dag_schedule_asset_alias_reference", ("alias_id", "asset_alias.id")),
    ):
        op.create_table(
            table,
            _fk(*ref),
            sa.Column("dag_id", sa.String(250), primary_key=True, nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
        op.create_index(f"ix_{table}_dag_id", table, ["dag_id"])
    for table in ("task_outlet_asset_reference", "task_inlet_asset_reference"):
        op.create_table(
            table,
            _fk("asset_id", "asset.id"),
            sa.Column("dag_id", sa.String(250), primary_key=True, nullable=False),
            sa.Column("task_id", sa.String(250), primary_key=True, nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
        op.create_index(f"ix_{table}_dag_id", table, ["dag_id"])
    op.create_table(
        "asset_event",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("asset_id", _ID, sa.ForeignKey("asset.id", ondelete="CASCADE"), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("source_dag_id", sa.String(250)),
        sa.Column("source_task_id", sa.String(250)),
        sa.Column("source_run_id", sa.String(250)),
        sa.Column("source_map_index", sa.Integer(), server_default="-1", nullable=False),
        sa.Column("source_alias", sa.String(1500)),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        **_AUTOINCREMENT,
    )
    op.create_index("ix_asset_event_asset_timestamp", "asset_event", ["asset_id", "timestamp"])
    op.create_index("ix_asset_event_timestamp", "asset_event", ["timestamp"])
    op.create_table(
        "asset_dag_run_queue",
        _fk("asset_id", "asset.id"),
        sa.Column("target_dag_id", sa.String(250), primary_key=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_asset_dag_run_queue_target_dag_id", "asset_dag_run_queue", ["target_dag_id"])
    op.create_table("dagrun_asset_event", _fk("dag_run_id", "dag_run.id"), _fk("event_id", "asset_event.id"))
    op.create_index("ix_dagrun_asset_event_event_id", "dagrun_asset_event", ["event_id"])


def downgrade() -> None:
    for table in (
        "dagrun_asset_event",
        "asset_dag_run_queue",
        "asset_event",
        "task_inlet_asset_reference",
        "task_outlet_asset_reference",
        "dag_schedule_asset_alias_reference",
        "dag_schedule_asset_reference",
        "asset_alias_asset",
        "asset_alias",
        "asset",
    ):
        op.drop_table(table)
