"""The built-in timetables, with Airflow 3's names, arguments and semantics, and their serialized form.

=============================  ============================================================
``schedule=``                  timetable
=============================  ============================================================
``None``                       :class:`NullTimetable` (runs only when triggered)
``"@once"``                    :class:`OnceTimetable` (one run, at ``start_date``)
``"@continuous"``              :class:`ContinuousTimetable` (a new run as soon as the last ends)
a cron string or preset        :class:`CronTriggerTimetable` (Airflow 3's default), or
                               :class:`CronDataIntervalTimetable` when
                               ``scheduler.create_cron_data_intervals`` is true
a ``timedelta`` or             :class:`DeltaTriggerTimetable` (Airflow 3's default), or
``relativedelta``              :class:`DeltaDataIntervalTimetable` when
                               ``scheduler.create_delta_data_intervals`` is true
a ``Timetable``                itself (also :class:`MultipleCronTriggerTimetable`,
                               :class:`EventsTimetable`, or a subclass of ``Timetable``)
=============================  ============================================================

*Trigger* timetables fire at the cron time (or every ``delta``) and the run's logical date is
that time; its data interval is ``[time - interval, time]`` (``interval`` defaults to zero).
*Data-interval* timetables (Airflow 2's meaning) make back-to-back intervals, and the run for
``[start, end)`` is created once the interval has ended, with logical date ``start``: a daily
DAG's run for 2024-01-01 starts just after 2024-01-02T00:00.

``catchup=True`` makes every missed run from ``start_date`` on; ``catchup=False`` makes only
the latest one (for trigger timetables: the latest cron time at or before now, run at once).
Cron expressions are evaluated in the DAG's time zone (``start_date``'s), DST-safe: an
hour-specific schedule fires once a day across both changes (a time that does not exist
moves past the gap, 02:30 → 03:30), and schedules that fire every hour advance in absolute
time, neither skipping nor repeating an hour.

Serialized form (in the DAG version): ``{"__type": "<module>.<Class>", "__var":
tt.serialize()}``; :func:`deserialize_timetable` imports the module by name and calls
``Class.deserialize``. It also reads the layout headrace wrote before (``{"type": "cron", …}``,
Airflow 2's meaning), so existing DAG versions keep their dates.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from dateutil.relativedelta import relativedelta

from headrace.authoring.schedules import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    ensure_aware,
    tz_from_name,
    tz_name,
    utcnow,
)
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


# --- simple timetables ------------------------------------------------------------


class NullTimetable(Timetable):
    """``schedule=None``: runs only when triggered."""

    description = "Never, external triggers only"
    periodic = False
    can_be_scheduled = False

    @property
    def summary(self) -> str:
        return "None"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return None


class OnceTimetable(Timetable):
    """``"@once"``: one run, at ``start_date``, about the instant ``start_date``."""

    description = "Once, as soon as possible"
    periodic = False

    @property
    def summary(self) -> str:
        return "@once"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None or restriction.earliest is None:
            return None
        if restriction.latest is not None and restriction.earliest > restriction.latest:
            return None
        return DagRunInfo.exact(restriction.earliest)


class ContinuousTimetable(Timetable):
    """``"@continuous"``: a new run as soon as the previous one ends (at most one active run).

    Each run covers ``[previous run's end, now]``; the first starts at ``start_date``.
    """

    description = "As frequently as possible, but only one run at a time."
    active_runs_limit = 1

    @property
    def summary(self) -> str:
        return "@continuous"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if restriction.earliest is None:
            return None
        now = utcnow()
        if restriction.latest is not None and now > restriction.latest:
            return None
        start = restriction.earliest if last_automated_data_interval is None else last_automated_data_interval.end
        return DagRunInfo.interval(start, max(start, now))


# --- cron and delta arithmetic -------------------------------------------------------


class _Cron:
    """A 5-field cron expression (or preset) evaluated in ``tz``, DST-safe (see the module docstring)."""

    def __init__(self, expression: str, tz: tzinfo) -> None:
        self.expression = expression
        self.cron = PRESETS.get(expression, expression)
        self.tz = tz
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
        candidate = self.after(self.before(t))
        return t if candidate == t else self.after(t)

    def at_or_before(self, t: datetime) -> datetime:
        """``t`` if it is a fire time, else the previous one."""
        candidate = self.after(self.before(t))
        return t if candidate == t else self.before(t)


def _check_delta(delta: Delta, what: str) -> None:
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


def _delta_summary(delta: Delta) -> str:
    return f"every {delta}" if isinstance(delta, timedelta) else f"every {delta!r}"


def _encode_delta(delta: Delta) -> float | dict[str, Any]:
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


def _decode_delta(data: Any) -> Delta:
    if isinstance(data, int | float):
        return timedelta(seconds=float(data))
    if isinstance(data, dict) and isinstance(data.get("relativedelta"), dict):
        return relativedelta(**data["relativedelta"])
    raise ScheduleError(f"cannot read the interval {data!r}")


# --- data-interval timetables (Airflow 2's meaning) ---------------------------------------


class _DataIntervalTimetable(Timetable):
    """Back-to-back intervals; the run for ``[start, end)`` is due at ``end`` (``catchup`` as described above)."""

    def _after(self, t: datetime) -> datetime:
        raise NotImplementedError

    def _before(self, t: datetime) -> datetime:
        raise NotImplementedError

    def _at_or_after(self, t: datetime) -> datetime:
        candidate = self._after(self._before(t))
        return t if candidate == t else self._after(t)

    def _at_or_before(self, t: datetime) -> datetime:
        candidate = self._after(self._before(t))
        return t if candidate == t else self._before(t)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The latest complete interval before ``run_after``."""
        end = self._at_or_before(ensure_aware(run_after).astimezone(UTC))
        return DataInterval(self._before(end), end)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if restriction.earliest is None:
            return None
        earliest = self._at_or_after(restriction.earliest)
        if not restriction.catchup:  # skip to the latest complete interval, never before earliest
            earliest = max(self._before(self._at_or_before(utcnow())), earliest)
        if last_automated_data_interval is None:
            start = earliest
        else:
            start = max(self._at_or_before(ensure_aware(last_automated_data_interval.end).astimezone(UTC)), earliest)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo.interval(start, self._after(start))


class CronDataIntervalTimetable(_DataIntervalTimetable):
    """A cron expression whose fire times bound the data intervals (Airflow 2's meaning of a cron string).

    ``CronDataIntervalTimetable(cron, timezone)``; raises ``ScheduleError`` for a bad expression.
    """

    def __init__(self, cron: str, timezone: str | tzinfo) -> None:
        self._cron = _Cron(cron, tz_from_name(timezone) if isinstance(timezone, str) else timezone)

    @property
    def summary(self) -> str:
        return self._cron.expression

    def _after(self, t: datetime) -> datetime:
        return self._cron.after(t)

    def _before(self, t: datetime) -> datetime:
        return self._cron.before(t)

    def serialize(self) -> dict[str, Any]:
        return {"expression": self._cron.expression, "timezone": tz_name(self._cron.tz)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(str(data["expression"]), tz_from_name(str(data["timezone"])))


class DeltaDataIntervalTimetable(_DataIntervalTimetable):
    """Intervals of fixed length ``delta`` (a ``timedelta`` or ``relativedelta``), anchored at ``start_date``.

    Raises ``ScheduleError`` if ``delta`` is not positive.
    """

    def __init__(self, delta: Delta) -> None:
        _check_delta(delta, "schedule interval")
        self._delta = delta
        self._anchor = datetime(1970, 1, 1, tzinfo=UTC)

    @property
    def summary(self) -> str:
        return _delta_summary(self._delta)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if restriction.earliest is not None:
            self._anchor = restriction.earliest
        return super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )

    def _k(self, t: datetime) -> int:
        """How many whole deltas from the anchor to ``t`` (the anchor is ``start_date`` once known)."""
        t = ensure_aware(t)
        if isinstance(self._delta, timedelta):
            return (t - self._anchor) // self._delta
        # A relativedelta has no fixed length: estimate from its first step, then correct (a few steps).
        first = (self._anchor + self._delta) - self._anchor
        k = int((t - self._anchor) / first)
        while self._anchor + (k + 1) * self._delta <= t:
            k += 1
        while self._anchor + k * self._delta > t:
            k -= 1
        return k

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """``[run_after - delta, run_after]`` (Airflow's choice: needs no anchor)."""
        return DataInterval(run_after - self._delta, run_after)

    def _after(self, t: datetime) -> datetime:
        return self._anchor + (self._k(t) + 1) * self._delta  # type: ignore[no-any-return]

    def _before(self, t: datetime) -> datetime:
        k = self._k(t)
        at: datetime = self._anchor + k * self._delta
        return at - self._delta if at == ensure_aware(t) else at

    def serialize(self) -> dict[str, Any]:
        return {"delta": _encode_delta(self._delta)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(_decode_delta(data["delta"]))


# --- trigger timetables (Airflow 3's default meaning) -------------------------------------


class _TriggerTimetable(Timetable):
    """Runs at fire times; each run's logical date is its fire time, its interval ``[time - interval, time]``."""

    _interval: Delta = timedelta()

    def _after(self, t: datetime) -> datetime:
        raise NotImplementedError

    def _at_or_after(self, t: datetime) -> datetime:
        raise NotImplementedError

    def _at_or_before(self, t: datetime) -> datetime:
        raise NotImplementedError

    def _first_run(self, now: datetime) -> datetime:
        """The first fire time of a DAG with no ``start_date`` and no run yet."""
        return self._at_or_before(now)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return DataInterval(run_after - self._interval, run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        last, earliest = last_automated_data_interval, restriction.earliest
        now = utcnow()
        if restriction.catchup:
            if last is not None:
                at = self._after(ensure_aware(last.end).astimezone(UTC))
            elif earliest is None:
                at = self._first_run(now)
            else:
                at = self._at_or_after(earliest)
        else:
            # The latest fire time at or before now, but never one already run nor one before earliest.
            candidates = [self._at_or_before(now)]
            if last is not None:
                candidates.append(self._after(ensure_aware(last.end).astimezone(UTC)))
            elif earliest is None:
                candidates.append(self._first_run(now))
            if earliest is not None:
                candidates.append(self._at_or_after(earliest))
            at = max(candidates)
        if restriction.latest is not None and at > restriction.latest:
            return None
        return DagRunInfo.interval(at - self._interval, at)


class CronTriggerTimetable(_TriggerTimetable):
    """Runs at each fire time of ``cron`` in ``timezone`` (Airflow 3's meaning of a cron string).

    ``interval`` (a ``timedelta`` or ``relativedelta``, default zero) sets the data interval
    ``[fire time - interval, fire time]``. ``run_immediately`` decides the first run of a DAG
    with no ``start_date``: True runs the latest past fire time at once, False waits for the
    next one, a ``timedelta`` runs the past one if it is at most that old, None if it is at most
    a tenth of the gap between fire times old (at least 5 minutes). Raises ``ScheduleError``
    for a bad expression.
    """

    def __init__(
        self,
        cron: str,
        *,
        timezone: str | tzinfo,
        interval: Delta = timedelta(),
        run_immediately: bool | timedelta | None = False,
    ) -> None:
        self._cron = _Cron(cron, tz_from_name(timezone) if isinstance(timezone, str) else timezone)
        if interval != timedelta():
            _check_delta(interval, "interval")
        self._interval = interval
        self._run_immediately = run_immediately

    @property
    def summary(self) -> str:
        return self._cron.expression

    def _after(self, t: datetime) -> datetime:
        return self._cron.after(t)

    def _at_or_after(self, t: datetime) -> datetime:
        return self._cron.at_or_after(t)

    def _at_or_before(self, t: datetime) -> datetime:
        return self._cron.at_or_before(t)

    def _first_run(self, now: datetime) -> datetime:
        past, coming = self._cron.at_or_before(now), self._cron.at_or_after(now)
        if self._run_immediately is True:
            return past
        if self._run_immediately is False:
            return coming
        if isinstance(self._run_immediately, timedelta):
            buffer = self._run_immediately
        else:
            buffer = max((coming - past) / 10, timedelta(minutes=5))
        return past if now - past <= buffer else coming

    def serialize(self) -> dict[str, Any]:
        run_immediately: Any = self._run_immediately
        if isinstance(run_immediately, timedelta):
            run_immediately = {"seconds": run_immediately.total_seconds()}
        return {
            "expression": self._cron.expression,
            "timezone": tz_name(self._cron.tz),
            "interval": _encode_delta(self._interval),
            "run_immediately": run_immediately,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        run_immediately = data.get("run_immediately", False)
        if isinstance(run_immediately, dict):
            run_immediately = timedelta(seconds=float(run_immediately["seconds"]))
        return cls(
            str(data["expression"]),
            timezone=tz_from_name(str(data["timezone"])),
            interval=_decode_delta(data.get("interval", 0.0)),
            run_immediately=run_immediately,
        )


class DeltaTriggerTimetable(_TriggerTimetable):
    """Runs every ``delta`` (a ``timedelta`` or ``relativedelta``), the first at ``start_date``.

    ``interval`` sets the data interval ``[run time - interval, run time]`` (default zero).
    With ``catchup=False`` and no run yet, the first run is at once. Raises ``ScheduleError``
    if ``delta`` is not positive.
    """

    def __init__(self, delta: Delta, *, interval: Delta = timedelta()) -> None:
        _check_delta(delta, "schedule interval")
        if interval != timedelta():
            _check_delta(interval, "interval")
        self._delta = delta
        self._interval = interval

    @property
    def summary(self) -> str:
        return _delta_summary(self._delta)

    def _after(self, t: datetime) -> datetime:
        return t + self._delta  # type: ignore[no-any-return]

    def _at_or_after(self, t: datetime) -> datetime:
        return t

    def _at_or_before(self, t: datetime) -> datetime:
        return t

    def serialize(self) -> dict[str, Any]:
        return {"delta": _encode_delta(self._delta), "interval": _encode_delta(self._interval)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(_decode_delta(data["delta"]), interval=_decode_delta(data.get("interval", 0.0)))


class MultipleCronTriggerTimetable(Timetable):
    """Runs at the fire times of several cron expressions (one run when two fire at once).

    ``MultipleCronTriggerTimetable(*crons, timezone, interval=timedelta(), run_immediately=False)``;
    raises ``ScheduleError`` with no expression or a bad one.
    """

    def __init__(
        self,
        *crons: str,
        timezone: str | tzinfo,
        interval: Delta = timedelta(),
        run_immediately: bool | timedelta | None = False,
    ) -> None:
        if not crons:
            raise ScheduleError("MultipleCronTriggerTimetable needs at least one cron expression")
        self._timetables = [
            CronTriggerTimetable(c, timezone=timezone, interval=interval, run_immediately=run_immediately)
            for c in crons
        ]

    @property
    def summary(self) -> str:
        return ", ".join(t.summary for t in self._timetables)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return min((t.infer_manual_data_interval(run_after=run_after) for t in self._timetables), key=lambda i: i.start)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        infos = [
            t.next_dagrun_info(last_automated_data_interval=last_automated_data_interval, restriction=restriction)
            for t in self._timetables
        ]
        now = utcnow().timestamp()

        def key(info: DagRunInfo | None) -> float:
            if info is None:
                return math.inf
            ts = info.logical_date.timestamp()
            # catchup: the earliest; otherwise the latest one at or before now, else the soonest after it
            return -ts if (not restriction.catchup and ts <= now) else ts

        return min(infos, key=key)

    def serialize(self) -> dict[str, Any]:
        first = self._timetables[0].serialize()
        return {**first, "expressions": [t.summary for t in self._timetables], "expression": None}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        one = CronTriggerTimetable.deserialize({**data, "expression": data["expressions"][0]})
        assert isinstance(one, CronTriggerTimetable)
        return cls(
            *data["expressions"], timezone=one._cron.tz, interval=one._interval, run_immediately=one._run_immediately
        )


class EventsTimetable(Timetable):
    """Runs at the given instants (Airflow's ``EventsTimetable``), each about the instant itself.

    ``event_dates``: datetimes (naive ones are UTC). ``restrict_to_events``: a manual run's
    data interval is the latest event at or before it instead of the trigger instant.
    ``presorted``: the dates are already in order. ``description``: the UI's text. Raises
    ``ScheduleError`` with no event.
    """

    def __init__(
        self,
        event_dates: Iterable[datetime],
        *,
        restrict_to_events: bool = False,
        presorted: bool = False,
        description: str | None = None,
    ) -> None:
        dates = [ensure_aware(d).astimezone(UTC) for d in event_dates]
        if not dates:
            raise ScheduleError("EventsTimetable needs at least one event date")
        self.event_dates = dates if presorted else sorted(dates)
        self.restrict_to_events = restrict_to_events
        self._description = description
        self.description = description or f"{len(dates)} events"

    @property
    def summary(self) -> str:
        return self._description or f"{len(self.event_dates)} events"

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        if not self.restrict_to_events:
            return DataInterval.exact(run_after)
        past = [d for d in self.event_dates if d <= ensure_aware(run_after)]
        return DataInterval.exact(past[-1] if past else self.event_dates[0])

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        candidates = self.event_dates
        if last_automated_data_interval is not None:
            after = ensure_aware(last_automated_data_interval.end)
            candidates = [d for d in candidates if d > after]
        if restriction.earliest is not None:
            candidates = [d for d in candidates if d >= restriction.earliest]
        if not restriction.catchup:  # the latest past event, and the future ones
            now = utcnow()
            past = [d for d in candidates if d <= now]
            candidates = past[-1:] + [d for d in candidates if d > now]
        if not candidates:
            return None
        at = candidates[0]
        if restriction.latest is not None and at > restriction.latest:
            return None
        return DagRunInfo.exact(at)

    def serialize(self) -> dict[str, Any]:
        return {
            "event_dates": [d.isoformat() for d in self.event_dates],
            "restrict_to_events": self.restrict_to_events,
            "description": self._description,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            [datetime.fromisoformat(d) for d in data["event_dates"]],
            restrict_to_events=bool(data.get("restrict_to_events", False)),
            presorted=True,
            description=data.get("description"),
        )


# --- schedule= and the serialized form ---------------------------------------------------

_DEFAULTS = {"create_cron_data_intervals": False, "create_delta_data_intervals": False}


def set_schedule_defaults(*, create_cron_data_intervals: bool, create_delta_data_intervals: bool) -> None:
    """Choose what a cron string / a delta as ``schedule`` means in this process (Airflow's two settings).

    The DAG processor calls this with ``scheduler.create_cron_data_intervals`` and
    ``scheduler.create_delta_data_intervals`` before it imports DAG files (both default
    False: Airflow 3's trigger timetables).
    """
    _DEFAULTS["create_cron_data_intervals"] = create_cron_data_intervals
    _DEFAULTS["create_delta_data_intervals"] = create_delta_data_intervals


def make_timetable(
    schedule: str | timedelta | Timetable | None | Any,
    tz: tzinfo = UTC,
    *,
    create_cron_data_intervals: bool | None = None,
    create_delta_data_intervals: bool | None = None,
) -> Timetable:
    """The timetable of ``DAG(schedule=...)`` (see the table in the module docstring).

    ``tz``: the zone cron strings are evaluated in. The two flags override the process's
    defaults (:func:`set_schedule_defaults`). Raises ``ScheduleError`` naming a bad schedule.
    """
    if schedule is None:
        return NullTimetable()
    if isinstance(schedule, Timetable):
        return schedule
    cron_intervals = _DEFAULTS["create_cron_data_intervals"]
    if create_cron_data_intervals is not None:
        cron_intervals = create_cron_data_intervals
    delta_intervals = _DEFAULTS["create_delta_data_intervals"]
    if create_delta_data_intervals is not None:
        delta_intervals = create_delta_data_intervals
    if isinstance(schedule, timedelta | relativedelta):
        return DeltaDataIntervalTimetable(schedule) if delta_intervals else DeltaTriggerTimetable(schedule)
    if isinstance(schedule, str):
        if schedule == "@once":
            return OnceTimetable()
        if schedule == "@continuous":
            return ContinuousTimetable()
        if schedule.startswith("@") and schedule not in PRESETS:
            known = ", ".join(["@once", "@continuous", *PRESETS])
            raise ScheduleError(f"unknown schedule preset {schedule!r}; known: {known}")
        if cron_intervals:
            return CronDataIntervalTimetable(schedule, tz)
        return CronTriggerTimetable(schedule, timezone=tz)
    raise ScheduleError(
        "schedule must be a cron string, a preset, a timedelta, a relativedelta, a Timetable or None, "
        f"not {type(schedule).__name__}"
    )


def serialize_timetable(timetable: Timetable) -> dict[str, Any]:
    """``{"__type": "<module>.<Class>", "__var": timetable.serialize()}``."""
    cls = type(timetable)
    return {"__type": f"{cls.__module__}.{cls.__qualname__}", "__var": timetable.serialize()}


def deserialize_timetable(data: dict[str, Any]) -> Timetable:
    """Rebuild a timetable from :func:`serialize_timetable` (or the earlier ``{"type": …}`` layout).

    A class outside headrace is imported by its module name (which must be importable in the
    scheduler: not a DAG file). Raises ``ScheduleError`` for an unknown layout or class, an
    import that fails, or a ``deserialize`` that raises.
    """
    if "__type" not in data:
        return _legacy(data)
    path = str(data["__type"])
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except Exception as exc:  # noqa: BLE001 - user code: any failure to import is reported, not raised
        raise ScheduleError(f"timetable class {path} cannot be imported: {type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Timetable)):
        raise ScheduleError(f"{path} is not a Timetable subclass")
    try:
        return cls.deserialize(dict(data.get("__var") or {}))
    except ScheduleError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code
        raise ScheduleError(f"{path}.deserialize failed: {type(exc).__name__}: {exc}") from None


def _legacy(data: dict[str, Any]) -> Timetable:
    """The layout before Airflow 3's timetables: cron and delta meant data intervals then, and still do."""
    kind = data.get("type")
    if kind == "none":
        return NullTimetable()
    if kind == "once":
        return OnceTimetable()
    if kind == "cron":
        return CronDataIntervalTimetable(str(data["expression"]), tz_from_name(str(data["timezone"])))
    if kind == "delta":
        return DeltaDataIntervalTimetable(timedelta(seconds=float(data["seconds"])))
    raise ScheduleError(f"unknown serialized timetable {data!r}")


__all__ = [
    "ContinuousTimetable",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "MultipleCronTriggerTimetable",
    "NullTimetable",
    "OnceTimetable",
    "deserialize_timetable",
    "make_timetable",
    "serialize_timetable",
    "set_schedule_defaults",
]
