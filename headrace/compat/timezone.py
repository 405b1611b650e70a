"""The basics of ``airflow.utils.timezone``, on the standard library (no pendulum).

Every datetime returned is timezone-aware. Naive datetimes given in are taken
as UTC (Airflow takes them in its configured default time zone, which is UTC
unless changed).
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, tzinfo

utc = UTC
"""The UTC time zone."""


def utcnow() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(UTC)


def is_localized(value: dt.datetime) -> bool:
    """Whether ``value`` carries a time zone that knows its offset."""
    return value.tzinfo is not None and value.tzinfo.utcoffset(value) is not None


def make_aware(value: dt.datetime, timezone: tzinfo | None = None) -> dt.datetime:
    """``value`` in ``timezone`` (default UTC); raises ``ValueError`` if it is aware already."""
    if is_localized(value):
        raise ValueError(f"make_aware expects a naive datetime, got {value!r}")
    return value.replace(tzinfo=timezone or UTC)


def convert_to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` converted to UTC (a naive one is taken as UTC); None stays None."""
    if value is None:
        return None
    if not is_localized(value):
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def datetime(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
    tzinfo: tzinfo | None = None,
) -> dt.datetime:
    """``datetime.datetime(...)`` in ``tzinfo`` (default UTC)."""
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tzinfo or UTC)


def parse(text: str) -> dt.datetime:
    """An ISO 8601 date or date-time; naive input is taken as UTC. Raises ``ValueError`` on bad input."""
    return convert_to_utc(dt.datetime.fromisoformat(text))  # type: ignore[return-value]
