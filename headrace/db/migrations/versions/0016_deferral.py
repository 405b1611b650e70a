"""Deferral: trigger and triggerer_job, and task_instance's trigger_id, trigger_timeout, next_method, next_kwargs

Revision ID: 0016
Revises: 0015

Airflow's table and column names (see :mod:`headrace.db.trigger_models`). On SQLite the new tables keep ids
never reused (``AUTOINCREMENT``, as 0007).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "triggerer_job",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("hostname", sa.String(length=250), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("triggers_running", sa.Integer(), nullable=False),
        sa.Column("loop_lag_p99", sa.Float(), nullable=True),
        sa.Column("loop_lag_max", sa.Float(), nullable=True),
        sa.Column("blocked_at", sa.DateTime(), nullable=True),
        sa.Column("blocked_seconds", sa.Float(), nullable=True),
        sa.Column("blocked_trigger_id", _ID, nullable=True),
        sa.Column("blocked_detail", sa.Text(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "trigger",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("classpath", sa.String(length=1000), nullable=False),
        sa.Column("kwargs", sa.Text(), nullable=False),
        sa.Column("created_date", sa.DateTime(), nullable=False),
        sa.Column("triggerer_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(["triggerer_id"], ["triggerer_job.id"], ondelete="SET NULL"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_trigger_triggerer_id", "trigger", ["triggerer_id"])
    kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if op.get_bind().dialect.name == "sqlite" else {}
    with op.batch_alter_table("task_instance", **kwargs) as batch_op:  # type: ignore[arg-type]
        batch_op.add_column(sa.Column("trigger_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("trigger_timeout", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("next_method", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("next_kwargs", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            "fk_task_instance_trigger_id", "trigger", ["trigger_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_task_instance_trigger_id", ["trigger_id"])


def downgrade() -> None:
    # A deferred task instance has no state to go back to: it fails (as a user's mark would).
    op.execute("UPDATE task_instance SET state = 'failed' WHERE state = 'deferred'")
    kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if op.get_bind().dialect.name == "sqlite" else {}
    with op.batch_alter_table("task_instance", **kwargs) as batch_op:  # type: ignore[arg-type]
        batch_op.drop_index("ix_task_instance_trigger_id")
        batch_op.drop_constraint("fk_task_instance_trigger_id", type_="foreignkey")
        batch_op.drop_column("next_kwargs")
        batch_op.drop_column("next_method")
        batch_op.drop_column("trigger_timeout")
        batch_op.drop_column("trigger_id")
    op.drop_index("ix_trigger_triggerer_id", table_name="trigger")
    op.drop_table("trigger")
    op.drop_table("triggerer_job")
