"""index on dag_run.end_date (the deadline check and the alert sweep read recently ended runs)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.create_index("ix_dag_run_end_date", ["end_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.drop_index("ix_dag_run_end_date")
