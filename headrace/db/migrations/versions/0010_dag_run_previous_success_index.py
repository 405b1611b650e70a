"""dag_run (dag_id, state, logical_date) index: the previous successful run of a DAG, read on every claim

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_dag_run_dag_state_logical_date", "dag_run", ["dag_id", "state", "logical_date"])


def downgrade() -> None:
    op.drop_index("ix_dag_run_dag_state_logical_date", table_name="dag_run")
