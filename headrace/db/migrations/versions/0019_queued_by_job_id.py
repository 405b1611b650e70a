"""task_instance.queued_by_job_id: the scheduler job that queued the current try

Revision ID: 0019
Revises: 0018

Airflow's column name. With several schedulers on PostgreSQL, the tries a scheduler queued but no supervisor
claimed are lost with its executor when it dies; another scheduler finds them by this column and schedules them
again, leaving the queued tries of live schedulers alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_instance", sa.Column("queued_by_job_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if op.get_bind().dialect.name == "sqlite" else {}
    with op.batch_alter_table("task_instance", **kwargs) as batch_op:  # type: ignore[arg-type]
        batch_op.drop_column("queued_by_job_id")
