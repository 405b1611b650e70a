"""Fire times: cron expressions evaluated in a time zone (DST-safe) and the deltas of delta schedules.

The arithmetic the timetables (:mod:`headrace.authoring.timetables`) are built on. Cron expressions
are croniter's (imported on first use); a wall-clock time that does not exist (spring forward) maps
past the gap, an ambiguous one (fall back) to its first occurrence, and a schedule that fires every
hour advances in absolute time from one hour to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from dateutil.relativedelta import relativedelta

from headrace.authoring.schedules import ensure_aware, tz_from_name
from headrace.exceptions import ScheduleError

Delta = Any
"""A ``datetime.timedelta`` or a ``dateutil.relativedelta.relativedelta``."""

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""Cron presets, as in Airflow (``@once`` and ``None`` are handled separately)."""


def _croniter() -> Any:
    """The ``croniter`` class, imported on first use (a cron schedule evaluated), not with the authoring API."""
    from croniter import croniter  # type: ignore[import-untyped]  # no stubs shipped

    return croniter


class CronSchedule:
    """A 5-field cron expression (or preset) evaluated in ``tz`` (a tzinfo or its name), DST-safe.

    Raises ``ScheduleError`` for a bad expression or an unknown zone name (see the module docstring).
    """

    def __init__(self, expression: str, tz: str | tzinfo) -> None:
        self.expression = expression
        self.cron = PRESETS.get(expression, expression)
        self.tz = tz_from_name(tz) if isinstance(tz, str) else tz
        try:
            _croniter()(self.cron, datetime(2000, 1, 1))
        except (ValueError, KeyError, TypeError) as exc:  # croniter's errors derive from ValueError
            raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from None
        fields = self.cron.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"invalid cron expression {expression!r}: expected 5 fields "
                f"(minute hour day month weekday), got {len(fields)}"
            )
        self._every_hour = fields[1] == "*"
        """Schedules that fire in every hour advance in absolute time across DST changes."""

    def _wall(self, naive: datetime) -> datetime:
        """A wall-clock time in the zone, as UTC: a time that does not exist (spring forward) maps past the
        gap, an ambiguous one (fall back) to its first occurrence."""
        return naive.replace(tzinfo=self.tz).astimezone(UTC)

    def _step(self, t: datetime, forward: bool) -> datetime:
        t_utc = ensure_aware(t).astimezone(UTC)
        naive = t_utc.astimezone(self.tz).replace(tzinfo=None)
        it = _croniter()(self.cron, naive)
        fired: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
        if self._every_hour and abs(fired - naive) <= timedelta(hours=1):
            # From one hour to the next: advance in absolute time, so no hour is skipped or repeated across DST.
            return t_utc + (fired - naive)
        aware = self._wall(fired)
        if forward:
            while aware <= t_utc:  # a wall time of the repeated hour that has passed already (fall back)
                aware = self._wall(it.get_next(datetime))
            return aware
        # Inside a repeated hour the first occurrence of today's time may be the latest fire before t,
        # though croniter (counting wall time) places it after t.
        coming = self._wall(_croniter()(self.cron, naive).get_next(datetime))
        if coming < t_utc:
            return coming
        if aware >= t_utc:  # fall-back ambiguity made the "previous" time not earlier: step again
            return self._step(aware - timedelta(hours=1), forward=False)
        return aware

    def after(self, t: datetime) -> datetime:
        """The first fire time strictly after ``t`` (UTC)."""
        return self._step(t, forward=True)

    def before(self, t: datetime) -> datetime:
        """The last fire time strictly before ``t`` (UTC)."""
        return self._step(t, forward=False)

    def at_or_after(self, t: datetime) -> datetime:
        """``t`` if it is a fire time, else the next one."""
        return at_or_after(t, self.after, self.before)

    def at_or_before(self, t: datetime) -> datetime:
        """``t`` if it is a fire time, else the previous one."""
        return at_or_before(t, self.after, self.before)


Step = Callable[[datetime], datetime]
"""From an instant to the next (or previous) boundary of a schedule, strictly after (before) it."""


def at_or_after(t: datetime, after: Step, before: Step) -> datetime:
    """``t`` if it is a boundary of the schedule that ``after`` / ``before`` step through, else the next one."""
    return t if after(before(t)) == t else after(t)


def at_or_before(t: datetime, after: Step, before: Step) -> datetime:
    """``t`` if it is a boundary of the schedule that ``after`` / ``before`` step through, else the previous one."""
    return t if after(before(t)) == t else before(t)


def check_delta(delta: Delta, what: str) -> None:
    if isinstance(delta, timedelta):
        if delta <= timedelta(0):
            raise ScheduleError(f"{what} must be positive, got {delta}")
        return
    if isinstance(delta, relativedelta):
        probe = datetime(2000, 1, 1, tzinfo=UTC)
        if probe + delta <= probe:
            raise ScheduleError(f"{what} must be positive, got {delta}")
        return
    raise ScheduleError(f"{what} must be a timedelta or a relativedelta, not {type(delta).__name__}")


def delta_summary(delta: Delta) -> str:
    return f"every {delta}" if isinstance(delta, timedelta) else f"every {delta!r}"


def encode_delta(delta: Delta) -> float | dict[str, Any]:
    """A timedelta as seconds; a relativedelta as its non-zero relative fields."""
    if isinstance(delta, timedelta):
        return delta.total_seconds()
    fields = ("years", "months", "weeks", "days", "hours", "minutes", "seconds", "microseconds")
    out = {f: getattr(delta, f) for f in fields if f != "weeks" and getattr(delta, f)}
    for absolute in ("year", "month", "day", "weekday", "hour", "minute", "second", "microsecond"):
        value = getattr(delta, absolute)
        if value is not None:
            out[absolute] = value.weekday if absolute == "weekday" else value
    return {"relativedelta": out}


def decode_delta(data: Any) -> Delta:
    if isinstance(data, int | float):
        return timedelta(seconds=float(data))
    if isinstance(data, dict) and isinstance(data.get("relativedelta"), dict):
        return relativedelta(**data["relativedelta"])
    raise ScheduleError(f"cannot read the interval {data!r}")
