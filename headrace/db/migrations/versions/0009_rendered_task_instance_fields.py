"""rendered_task_instance_fields: the template fields of a task instance as its latest try rendered them

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rendered_task_instance_fields",
        sa.Column("task_instance_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("rendered_fields", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_instance_id"], ["task_instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_instance_id"),
    )


def downgrade() -> None:
    op.drop_table("rendered_task_instance_fields")
