"""task_reschedule and task_instance.reschedule_date: sensors in reschedule mode (state up_for_reschedule)

Revision ID: 0014
Revises: 0012

One ``task_reschedule`` row per poke that found the sensor's criteria unmet
(Airflow's table); ``task_instance.reschedule_date`` is when the next poke is
due, which the scheduler wakes for as it does for ``next_retry_at``. On
SQLite the new table keeps ids never reused (``AUTOINCREMENT``, as 0007).

(Written beside revision 0013 of another branch: the chain is joined at merge, ``down_revision`` becoming
"0013".)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch_op:
        batch_op.add_column(sa.Column("reschedule_date", sa.DateTime(), nullable=True))
    op.create_table(
        "task_reschedule",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("task_instance_id", _ID, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), server_default="-1", nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=False),
        sa.Column("reschedule_date", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_instance_id"], ["task_instance.id"], ondelete="CASCADE"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_task_reschedule_ti_try", "task_reschedule", ["task_instance_id", "try_number"])


def downgrade() -> None:
    op.drop_index("ix_task_reschedule_ti_try", table_name="task_reschedule")
    op.drop_table("task_reschedule")
    # A task instance waiting for its next poke has no state to go back to: it fails (as a user's mark would).
    op.execute("UPDATE task_instance SET state = 'failed' WHERE state = 'up_for_reschedule'")
    kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if op.get_bind().dialect.name == "sqlite" else {}
    with op.batch_alter_table("task_instance", **kwargs) as batch_op:  # type: ignore[arg-type]
        batch_op.drop_column("reschedule_date")
