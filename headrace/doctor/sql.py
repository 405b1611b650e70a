"""SQL building blocks of the doctor's measurements that work on SQLite and PostgreSQL alike.

Percentiles are *nearest-rank* (the smallest value with at least q % of the
values at or below it), computed in the database with ``ROW_NUMBER()`` and
``COUNT(*)`` window functions, so only a handful of rows come back however
many tries there are. Both SQLite (≥ 3.25) and PostgreSQL have them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, and_, cast, func, literal_column, or_, select
from sqlalchemy.orm import Session


def epoch_seconds(column: Any, *, sqlite: bool) -> ColumnElement[float]:
    """SQL for a stored datetime column as seconds since the Unix epoch (float).

    Datetimes are stored as naive UTC (``UtcDateTime``): SQLite's ``julianday``
    reads its text form, PostgreSQL's ``EXTRACT(EPOCH …)`` treats a
    ``timestamp without time zone`` as UTC.
    """
    if sqlite:
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(func.extract("epoch", column), Float)


def nearest_rank(percent: int, count: Any) -> ColumnElement[int]:
    """SQL for the 1-based nearest rank of ``percent`` (1–100) among ``count`` values: ``ceil(percent·n/100)``.

    Written with integer division (identical on both backends), not ``CEIL``.
    """
    return (literal_column(str(percent)) * count + 99) // 100  # type: ignore[no-any-return]


def percentiles(
    session: Session, values: Select[*tuple[Any, ...]], percents: Sequence[int], *, group_by: Sequence[str] = ()
) -> dict[tuple[Any, ...], dict[int, float]]:
    """Nearest-rank percentiles of the column ``v`` of ``values``, per group.

    ``values`` selects a column labelled ``v`` plus the columns named in
    ``group_by`` (NULL ``v`` rows are ignored). Returns
    ``{group key tuple: {percent: value}}``; the key is ``()`` without groups,
    and a group with no values is absent. ``100`` gives the maximum.
    """
    sub = values.subquery()
    nonnull = select(sub).where(sub.c.v.is_not(None)).subquery()
    part = [nonnull.c[name] for name in group_by]
    ranked = select(
        *part,
        nonnull.c.v,
        func.row_number().over(partition_by=part or None, order_by=nonnull.c.v).label("rn"),
        func.count().over(partition_by=part or None).label("n"),
    ).subquery()
    wanted = or_(*(ranked.c.rn == nearest_rank(p, ranked.c.n) for p in percents))
    rows = session.execute(
        select(*(ranked.c[name] for name in group_by), ranked.c.v, ranked.c.rn, ranked.c.n).where(wanted)
    ).all()
    result: dict[tuple[Any, ...], dict[int, float]] = {}
    for row in rows:
        key = tuple(row[: len(group_by)])
        v, rn, n = row[len(group_by)], int(row[len(group_by) + 1]), int(row[len(group_by) + 2])
        for p in percents:
            if rn == (p * n + 99) // 100:
                result.setdefault(key, {})[p] = float(v)
    return result


def window(column: Any, start: Any, end: Any) -> ColumnElement[bool]:
    """``start <= column < end``."""
    return and_(column >= start, column < end)
