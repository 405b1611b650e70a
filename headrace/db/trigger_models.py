"""Tables of deferral (revision 0016): ``trigger`` and ``triggerer_job``.

* ``trigger`` — one row per deferral: the trigger's ``classpath`` and ``kwargs`` (JSON text with XCom's
  types, :mod:`headrace.authoring.xcom_serde`), when it was made, and the triggerer that runs it
  (``triggerer_id``; NULL: none yet). The deferred task instance points at it (``task_instance.trigger_id``).
  Airflow's table and column names.
* ``triggerer_job`` — a triggerer process: identity, heartbeat, capacity and what its event loop measured
  (lag, the last trigger that blocked it); ``headrace doctor`` reads it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from headrace.db.base import ID, NEVER_REUSED, Base, UtcDateTime


class TriggererJob(Base):
    """One ``headrace triggerer`` process: alive while ``heartbeat_at`` is recent and ``ended_at`` is NULL."""

    __tablename__ = "triggerer_job"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    hostname: Mapped[str] = mapped_column(String(250))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    """Most triggers it runs at once (``triggerer.capacity``)."""
    triggers_running: Mapped[int] = mapped_column(Integer, default=0)
    loop_lag_p99: Mapped[float | None] = mapped_column(Float)
    """Seconds: 99th percentile of the event loop's lag over the last heartbeat interval."""
    loop_lag_max: Mapped[float | None] = mapped_column(Float)
    """Seconds: the largest lag over the last heartbeat interval."""
    blocked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When a trigger last held the event loop longer than the block threshold."""
    blocked_seconds: Mapped[float | None] = mapped_column(Float)
    blocked_trigger_id: Mapped[int | None] = mapped_column(ID)
    blocked_detail: Mapped[str | None] = mapped_column(Text)
    """Which trigger (class, task instance) and where it was when it blocked the loop."""


class Trigger(Base):
    """A trigger a deferred task instance waits on (Airflow's ``trigger``)."""

    __tablename__ = "trigger"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    classpath: Mapped[str] = mapped_column(String(1000))
    kwargs: Mapped[str] = mapped_column(Text)
    """JSON text (XCom's typed envelopes) of the keyword arguments that rebuild the trigger."""
    created_date: Mapped[datetime] = mapped_column(UtcDateTime)
    triggerer_id: Mapped[int | None] = mapped_column(
        ID, ForeignKey("triggerer_job.id", ondelete="SET NULL"), index=True
    )
    """The triggerer running it (NULL: none claimed it yet; a dead triggerer's triggers are claimed again)."""
