"""Reading ended tries for the listeners: one query for a batch of executor events, or for a time window."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.db.models import TaskInstance, TaskTry
from headrace.observability.listener import TryInfo

_COLUMNS = (
    TaskTry.task_instance_id,
    TaskTry.dag_id,
    TaskTry.task_id,
    TaskTry.run_id,
    TaskTry.try_number,
    TaskTry.map_index,
    TaskTry.state,
    TaskTry.end_reason,
    TaskTry.start_date,
    TaskTry.end_date,
    TaskTry.peak_rss_bytes,
    TaskTry.cpu_seconds,
    TaskTry.error,
    TaskInstance.queued_at,
    TaskInstance.try_number.label("ti_try"),
)


def _info(r: Any) -> TryInfo:
    return TryInfo(
        dag_id=r.dag_id,
        task_id=r.task_id,
        run_id=r.run_id,
        try_number=r.try_number,
        state=r.state,
        end_reason=r.end_reason,
        queued_at=r.queued_at if r.ti_try == r.try_number else None,
        start_date=r.start_date,
        end_date=r.end_date,
        peak_rss_bytes=r.peak_rss_bytes,
        cpu_seconds=r.cpu_seconds,
        error=r.error,
        map_index=r.map_index,
    )


def ended_tries(session: Session, keys: Iterable[tuple[int, int]]) -> list[TryInfo]:
    """The :class:`TryInfo` of each ``(ti_id, try_number)`` whose ``task_try`` row has ended, in one query.

    Tries with no row (never started) or not yet ended are left out.
    ``queued_at`` is the task instance's, when it is still on that try.
    """
    wanted = set(keys)
    if not wanted:
        return []
    rows = session.execute(
        select(*_COLUMNS)
        .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
        .where(TaskTry.task_instance_id.in_({ti_id for ti_id, _ in wanted}), TaskTry.end_date.is_not(None))
    ).all()
    return [_info(r) for r in rows if (r.task_instance_id, r.try_number) in wanted]


def tries_ended_since(session: Session, since: datetime, states: Collection[str]) -> list[TryInfo]:
    """The :class:`TryInfo` of every try with ``end_date >= since`` (UTC-aware) that left its task instance
    in one of ``states`` (its ``task_try.state``), oldest first.

    One query, bounded by the index on ``task_try.end_date``; no rows read when ``states`` is empty.
    """
    if not states:
        return []
    rows = session.execute(
        select(*_COLUMNS)
        .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
        .where(TaskTry.end_date >= since, TaskTry.state.in_(sorted(states)))
        .order_by(TaskTry.end_date, TaskTry.id)
    ).all()
    return [_info(r) for r in rows]


__all__ = ["ended_tries", "tries_ended_since"]
