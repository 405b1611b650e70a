"""Schedules: from ``DAG(schedule=...)`` to the next DAG run and its data interval.

Airflow's semantics, which the scheduler relies on:

* A scheduled run covers a *data interval* ``[start, end)``; its ``logical_date``
  is the interval's start, and the run may be created once the interval has
  ended: ``run_after = data_interval.end``. A daily DAG's run for 2024-01-01
  is created just after 2024-01-02T00:00.
* ``catchup=True``: runs follow one another with no gap, from the first interval
  at or after ``start_date`` (aligned to the schedule) up to ``now`` (and
  ``end_date``).
* ``catchup=False``: only the latest complete interval before ``now`` is run;
  intervals missed while the scheduler was down are skipped, never backfilled.
* ``@once``: one run, at ``start_date`` (a zero-length interval).
* ``timedelta``: intervals ``[start_date + k·delta, start_date + (k+1)·delta)``.
* Cron expressions are evaluated in the DAG's time zone (``start_date``'s), so
  ``0 2 * * *`` in Europe/Amsterdam fires at 02:00 local time in summer and in
  winter. On the spring-forward day a time that does not exist moves forward
  by the gap (02:30 → 03:30); on the fall-back day an hour-specific schedule
  fires once. Schedules that fire every hour advance in absolute time, so
  they neither skip nor repeat an hour. All returned datetimes are UTC-aware.

``now`` is always passed in; nothing here reads the clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from headrace.exceptions import ScheduleError

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


@dataclass(frozen=True)
class DataInterval:
    """The span of data one DAG run covers: ``[start, end)``, both UTC-aware."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class DagRunInfo:
    """The next DAG run a timetable asks for."""

    logical_date: datetime
    """The run's logical date (= ``data_interval.start``), UTC-aware."""
    data_interval: DataInterval
    """The data interval the run covers."""

    @property
    def run_after(self) -> datetime:
        """The earliest time at which the run may be created (the interval's end)."""
        return self.data_interval.end


def ensure_aware(value: datetime, tz: tzinfo = UTC) -> datetime:
    """Return ``value`` with ``tz`` attached if it is naive (naive datetimes are taken as ``tz``)."""
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def tz_name(tz: tzinfo) -> str:
    """Name a time zone for JSON: an IANA key, ``"UTC"`` or a fixed offset ``"+02:00"``.

    Raises ``ScheduleError`` for a tzinfo that has neither a key nor a fixed offset.
    """
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is UTC:
        return "UTC"
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    raise ScheduleError(f"time zone {tz!r} cannot be named; use zoneinfo.ZoneInfo")


def tz_from_name(name: str) -> tzinfo:
    """Inverse of :func:`tz_name`. Raises ``ScheduleError`` for an unknown name."""
    if name == "UTC":
        return UTC
    if name[:1] in "+-" and len(name) == 6:
        sign = 1 if name[0] == "+" else -1
        return timezone(sign * timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc


class Timetable(ABC):
    """Turns a schedule into DAG runs. Subclasses implement :meth:`next_run_info`."""

    summary: str = ""
    """A short human description (the cron string, ``@once``, ``every 1:00:00``…)."""

    @abstractmethod
    def next_run_info(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        """Return the run after ``last`` (the latest scheduled run's interval), due or not.

        ``None`` when the schedule has no further run (never, ``@once`` done,
        past ``end_date``, no ``start_date``). Compare ``run_after`` with the
        clock to know when it is due; a scheduler can sleep until then.
        """

    def next_run(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        """Return the next run that is due at ``now`` (its interval has ended), else ``None``."""
        info = self.next_run_info(last, start_date=start_date, end_date=end_date, catchup=catchup, now=now)
        if info is None or info.run_after > ensure_aware(now):
            return None
        return info

    def next_run_after(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> datetime | None:
        """Return when the next run becomes due (may be ≤ ``now``), or ``None`` if never."""
        info = self.next_run_info(last, start_date=start_date, end_date=end_date, catchup=catchup, now=now)
        return None if info is None else info.run_after

    @abstractmethod
    def serialize(self) -> dict[str, Any]:
        """Return a JSON-able dict that :func:`deserialize_timetable` turns back into an equal timetable."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timetable) and type(other) is type(self) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.serialize().items())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary!r})"


class NullTimetable(Timetable):
    """``schedule=None``: runs only when triggered."""

    summary = "None"

    def next_run_info(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        return None

    def serialize(self) -> dict[str, Any]:
        return {"type": "none"}


class OnceTimetable(Timetable):
    """``@once``: one run, at ``start_date``, with the zero-length interval ``[start_date, start_date]``."""

    summary = "@once"

    def next_run_info(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        if last is not None or start_date is None:
            return None
        start = ensure_aware(start_date).astimezone(UTC)
        if end_date is not None and start > ensure_aware(end_date):
            return None
        return DagRunInfo(start, DataInterval(start, start))

    def serialize(self) -> dict[str, Any]:
        return {"type": "once"}


class _IntervalTimetable(Timetable):
    """Shared catchup logic for timetables made of back-to-back intervals."""

    @abstractmethod
    def _next(self, t: datetime) -> datetime:
        """The first boundary strictly after ``t``."""

    @abstractmethod
    def _prev(self, t: datetime) -> datetime:
        """The last boundary strictly before ``t``."""

    def _align_next(self, t: datetime) -> datetime:
        """``t`` if it is a boundary, else the next boundary."""
        candidate = self._next(self._prev(t))
        return t if candidate == t else self._next(t)

    def _align_prev(self, t: datetime) -> datetime:
        """``t`` if it is a boundary, else the previous boundary."""
        candidate = self._next(self._prev(t))
        return t if candidate == t else self._prev(t)

    def _latest_complete_start(self, now: datetime, earliest: datetime) -> datetime:
        """Start of the latest interval that has ended by ``now``, but not before ``earliest``."""
        end = self._align_prev(now)
        return max(self._prev(end), earliest)

    def next_run_info(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        if start_date is None:
            return None
        now = ensure_aware(now).astimezone(UTC)
        earliest = self._align_next(ensure_aware(start_date).astimezone(UTC))
        if not catchup:
            earliest = self._latest_complete_start(now, earliest)
        start = earliest if last is None else max(self._align_prev(ensure_aware(last.end).astimezone(UTC)), earliest)
        if end_date is not None and start > ensure_aware(end_date):
            return None
        return DagRunInfo(start, DataInterval(start, self._next(start)))


class CronTimetable(_IntervalTimetable):
    """A cron expression (or preset) evaluated in time zone ``tz``."""

    def __init__(self, expression: str, tz: tzinfo = UTC) -> None:
        """Raises ``ScheduleError`` naming the expression if croniter cannot parse it."""
        self.expression = expression
        self.cron = PRESETS.get(expression, expression)
        self.tz = tz
        self.summary = expression
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
        # Schedules that fire in every hour advance in absolute time across DST changes.
        self._every_hour = fields[1] == "*"

    def _step(self, t: datetime, forward: bool) -> datetime:
        local = ensure_aware(t).astimezone(self.tz)
        naive = local.replace(tzinfo=None)
        it = _croniter()(self.cron, naive)
        fired: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
        if self._every_hour:
            return (local.astimezone(UTC) + (fired - naive)).astimezone(UTC)
        # Wall-clock time in the DAG's zone; a non-existent time (spring forward)
        # maps through UTC to the time after the gap.
        aware = fired.replace(tzinfo=self.tz).astimezone(UTC)
        if not forward and aware >= ensure_aware(t):
            # Fall-back ambiguity made the "previous" time not earlier: step again.
            return self._step(aware - timedelta(hours=1), forward=False)
        return aware

    def _next(self, t: datetime) -> datetime:
        return self._step(t, forward=True)

    def _prev(self, t: datetime) -> datetime:
        return self._step(t, forward=False)

    def serialize(self) -> dict[str, Any]:
        return {"type": "cron", "expression": self.expression, "timezone": tz_name(self.tz)}


class DeltaTimetable(_IntervalTimetable):
    """Fixed intervals ``[anchor + k·delta, anchor + (k+1)·delta)`` anchored at ``start_date``."""

    def __init__(self, delta: timedelta) -> None:
        """Raises ``ScheduleError`` if ``delta`` is not positive."""
        if delta <= timedelta(0):
            raise ScheduleError(f"schedule interval must be positive, got {delta}")
        self.delta = delta
        self.summary = f"every {delta}"
        self._anchor = datetime(1970, 1, 1, tzinfo=UTC)

    def next_run_info(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        if start_date is not None:
            self._anchor = ensure_aware(start_date).astimezone(UTC)
        return super().next_run_info(last, start_date=start_date, end_date=end_date, catchup=catchup, now=now)

    def _k(self, t: datetime) -> int:
        return (ensure_aware(t) - self._anchor) // self.delta

    def _next(self, t: datetime) -> datetime:
        return self._anchor + (self._k(t) + 1) * self.delta

    def _prev(self, t: datetime) -> datetime:
        k = self._k(t)
        at = self._anchor + k * self.delta
        return at - self.delta if at == ensure_aware(t) else at

    def serialize(self) -> dict[str, Any]:
        return {"type": "delta", "seconds": self.delta.total_seconds()}


def make_timetable(schedule: str | timedelta | Timetable | None, tz: tzinfo = UTC) -> Timetable:
    """Build the timetable for ``DAG(schedule=...)``.

    ``schedule``: ``None`` (never), ``"@once"``, a preset (``@hourly``, ``@daily``,
    ``@weekly``, ``@monthly``, ``@quarterly``, ``@yearly``), a 5-field cron string,
    a positive ``timedelta`` or a ready ``Timetable``. ``tz`` is the zone cron
    strings are evaluated in. Raises ``ScheduleError`` naming the bad schedule.
    """
    if schedule is None:
        return NullTimetable()
    if isinstance(schedule, Timetable):
        return schedule
    if isinstance(schedule, timedelta):
        return DeltaTimetable(schedule)
    if isinstance(schedule, str):
        if schedule == "@once":
            return OnceTimetable()
        if schedule.startswith("@") and schedule not in PRESETS:
            raise ScheduleError(f"unknown schedule preset {schedule!r}; known: @once, {', '.join(PRESETS)}")
        return CronTimetable(schedule, tz)
    raise ScheduleError(f"schedule must be a cron string, a preset, a timedelta or None, not {type(schedule).__name__}")


def deserialize_timetable(data: dict[str, Any]) -> Timetable:
    """Rebuild a timetable from :meth:`Timetable.serialize` output. Raises ``ScheduleError``."""
    kind = data.get("type")
    if kind == "none":
        return NullTimetable()
    if kind == "once":
        return OnceTimetable()
    if kind == "cron":
        return CronTimetable(str(data["expression"]), tz_from_name(str(data["timezone"])))
    if kind == "delta":
        return DeltaTimetable(timedelta(seconds=float(data["seconds"])))
    raise ScheduleError(f"unknown serialized timetable {data!r}")


def _croniter() -> Any:
    """The ``croniter`` class, imported on first use (a cron schedule evaluated), not with the authoring API."""
    from croniter import croniter  # type: ignore[import-untyped]  # no stubs shipped

    return croniter
