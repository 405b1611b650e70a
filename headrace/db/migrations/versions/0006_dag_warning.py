"""dag_warning: what a DAG's author wrote that headrace ignores (Airflow's DAG warnings)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag_warning",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("warning_type", sa.String(length=50), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dag_warning", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dag_warning_dag_id"), ["dag_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dag_warning", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dag_warning_dag_id"))
    op.drop_table("dag_warning")
