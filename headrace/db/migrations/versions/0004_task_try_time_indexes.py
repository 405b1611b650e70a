"""indexes on task_try.start_date and end_date (time-window reads of doctor and the resources page)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_try", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_try_start_date"), ["start_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_try_end_date"), ["end_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_try", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_try_end_date"))
        batch_op.drop_index(batch_op.f("ix_task_try_start_date"))
