"""Critical sections shared by every scheduler: transaction-scoped advisory locks on PostgreSQL.

Several schedulers on one PostgreSQL database claim rows with ``FOR UPDATE SKIP
LOCKED``, which keeps two of them off the same row but not off the same *limit*:
two schedulers that each count a pool's free slots, then each queue into them,
would overfill it together. A step that counts and spends a shared limit
(``core.parallelism``, pools, ``max_active_tasks``, ``max_active_tis_per_dag(run)``,
``max_active_runs``) therefore first calls :func:`hold` in its transaction:
``pg_advisory_xact_lock(key)`` waits until no other transaction holds that key,
and the lock is released by the transaction's commit or rollback — so the
section lasts exactly one short statement batch, and a crashed scheduler
cannot leave it held. Nothing is kept in session state (PgBouncer's
transaction mode is fine).

On SQLite :func:`hold` does nothing: a writing transaction there begins with
``BEGIN IMMEDIATE``, which already lets one writer in at a time.
"""

from __future__ import annotations

from enum import IntEnum

from sqlalchemy import text
from sqlalchemy.orm import Session

_PREFIX = 0x6872_0000
"""``"hr"`` in the high bytes: keeps headrace's keys apart from other users of advisory locks on the server."""


class Section(IntEnum):
    """The shared critical sections, each an advisory lock key."""

    QUEUE_TIS = _PREFIX + 1
    """Count active task instances and move scheduled ones to queued (:mod:`headrace.scheduler.readiness`)."""
    START_RUNS = _PREFIX + 2
    """Count running DAG runs and move queued ones to running (:func:`headrace.scheduler.runs.start_queued_runs`)."""


_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def hold(session: Session, section: Section) -> None:
    """Wait for, then hold until ``session``'s transaction ends, the critical section ``section``.

    Call it before the first read of the counts the section guards (on PostgreSQL's READ COMMITTED each
    later statement then sees what the previous holder committed). No-op on SQLite.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK, {"key": int(section)})


__all__ = ["Section", "hold"]
