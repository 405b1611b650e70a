"""user_session (server-side login sessions); ids never reused on SQLite (AUTOINCREMENT)

Revision ID: 0007
Revises: 0006

On SQLite, ``INTEGER PRIMARY KEY`` hands the largest id out again once its
row is deleted; a deleted user's cookie then named the next user. The tables
whose ids are held outside the database (users, API tokens, import errors,
DAG runs, task instances, tries, scheduler jobs) are rebuilt with
``AUTOINCREMENT`` (batch mode: copy, drop, rename; ``headrace.db.migrate``
turns SQLite's foreign keys off meanwhile, so dropping a parent does not
cascade to its children). PostgreSQL's sequences never reuse ids: only the
new table there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEVER_REUSED = ("user", "api_token", "import_error", "dag_run", "task_instance", "task_try", "scheduler_job")
"""Tables rebuilt with AUTOINCREMENT on SQLite (parents before children)."""


def _set_autoincrement(on: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in NEVER_REUSED:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": on}):
            pass


def upgrade() -> None:
    op.create_table(
        "user_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_session_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_session_expires_at"), ["expires_at"], unique=False)
    _set_autoincrement(True)


def downgrade() -> None:
    _set_autoincrement(False)
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_session_expires_at"))
        batch_op.drop_index(batch_op.f("ix_user_session_user_id"))
    op.drop_table("user_session")
