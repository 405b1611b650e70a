"""task_try: how the try was contained and how many of its processes outlived it

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_try", schema=None) as batch_op:
        batch_op.add_column(sa.Column("containment", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("processes_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("processes_killed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_try", schema=None) as batch_op:
        batch_op.drop_column("processes_killed")
        batch_op.drop_column("processes_left")
        batch_op.drop_column("containment")
