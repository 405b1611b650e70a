"""task_instance.external_executor_id: the id the executor's messages carry (the Celery task id)

Revision ID: 0017
Revises: 0016

Airflow's column name. Written in the transaction that queues a try, so a message the broker carries always
names a committed try; cleared when a queued try is given back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_instance", sa.Column("external_executor_id", sa.String(length=250), nullable=True))


def downgrade() -> None:
    kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if op.get_bind().dialect.name == "sqlite" else {}
    with op.batch_alter_table("task_instance", **kwargs) as batch_op:  # type: ignore[arg-type]
        batch_op.drop_column("external_executor_id")
