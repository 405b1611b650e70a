"""dag.dag_display_name: the name the UI shows for a DAG (Airflow's dag_display_name)

Revision ID: 0011
Revises: 0009 (to be chained after 0010 when the branches are merged)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        batch.add_column(sa.Column("dag_display_name", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        batch.drop_column("dag_display_name")
