"""task_instance.rendered_map_index: a mapped task instance's label (Airflow's map_index_template)

Revision ID: 0013
Revises: 0012

The task's ``map_index_template`` rendered at the end of each try, at most 250 characters as in Airflow;
null when the task has none. On SQLite the downgrade rebuilds the table (batch mode), keeping
``AUTOINCREMENT`` (revision 0007) and the ``(dag_run_id, task_id, map_index)`` key 0012 named.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch_op:
        batch_op.add_column(sa.Column("rendered_map_index", sa.String(length=250), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        batch = op.batch_alter_table("task_instance", recreate="always", table_kwargs={"sqlite_autoincrement": True})
    else:
        batch = op.batch_alter_table("task_instance")
    with batch as batch_op:
        batch_op.drop_column("rendered_map_index")
