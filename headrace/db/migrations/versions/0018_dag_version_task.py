"""dag_version_task: each task's entry of a DAG version, one row per task

Revision ID: 0018
Revises: 0017

A try's claim read its task's entry out of the whole serialized DAG (``json_extract`` on SQLite, ``->`` on
PostgreSQL), which costs time in proportion to the DAG's size on every try; it now reads this table by primary
key. The rows of versions that already exist are written here from their documents.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 500


def upgrade() -> None:
    table = op.create_table(
        "dag_version_task",
        sa.Column("dag_version_id", _ID, nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("serialized", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dag_version_id"], ["dag_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dag_version_id", "task_id"),
    )
    assert table is not None
    conn = op.get_bind()
    for version_id, serialized in conn.execute(sa.text("SELECT id, serialized FROM dag_version")):
        document: Any = json.loads(serialized) if isinstance(serialized, str) else serialized
        rows = [
            {"dag_version_id": version_id, "task_id": task_id, "serialized": entry}
            for task_id, entry in ((document or {}).get("tasks") or {}).items()
        ]
        for start in range(0, len(rows), _BATCH):
            conn.execute(table.insert(), rows[start : start + _BATCH])


def downgrade() -> None:
    op.drop_table("dag_version_task")
