"""Trigger timetables (Airflow 3's meaning of a cron string or a delta) and events: a run at each fire time.

Each run's logical date is its fire time and its data interval ``[time - interval, time]``; see
:mod:`headrace.authoring.timetables` for the whole family and ``catchup``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from headrace.authoring.fire_times import CronSchedule, Delta, check_delta, decode_delta, delta_summary, encode_delta
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
        self._cron = CronSchedule(cron, timezone)
        if interval != timedelta():
            check_delta(interval, "interval")
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
            "interval": encode_delta(self._interval),
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
            interval=decode_delta(data.get("interval", 0.0)),
            run_immediately=run_immediately,
        )


class DeltaTriggerTimetable(_TriggerTimetable):
    """Runs every ``delta`` (a ``timedelta`` or ``relativedelta``), the first at ``start_date``.

    ``interval`` sets the data interval ``[run time - interval, run time]`` (default zero).
    With ``catchup=False`` and no run yet, the first run is at once. Raises ``ScheduleError``
    if ``delta`` is not positive.
    """

    def __init__(self, delta: Delta, *, interval: Delta = timedelta()) -> None:
        check_delta(delta, "schedule interval")
        if interval != timedelta():
            check_delta(interval, "interval")
        self._delta = delta
        self._interval = interval

    @property
    def summary(self) -> str:
        return delta_summary(self._delta)

    def _after(self, t: datetime) -> datetime:
        return t + self._delta  # type: ignore[no-any-return]

    def _at_or_after(self, t: datetime) -> datetime:
        return t

    def _at_or_before(self, t: datetime) -> datetime:
        return t

    def serialize(self) -> dict[str, Any]:
        return {"delta": encode_delta(self._delta), "interval": encode_delta(self._interval)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(decode_delta(data["delta"]), interval=decode_delta(data.get("interval", 0.0)))


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
