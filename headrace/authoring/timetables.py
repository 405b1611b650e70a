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
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from dateutil.relativedelta import relativedelta

from headrace.authoring.fire_times import (
    PRESETS,
    CronSchedule,
    Delta,
    Step,
    at_or_after,
    at_or_before,
    check_delta,
    decode_delta,
    delta_summary,
    encode_delta,
)
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
from headrace.authoring.trigger_timetables import (
    CronTriggerTimetable,
    DeltaTriggerTimetable,
    EventsTimetable,
    MultipleCronTriggerTimetable,
)
from headrace.exceptions import ScheduleError

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


# --- data-interval timetables (Airflow 2's meaning) ---------------------------------------


class _DataIntervalTimetable(Timetable):
    """Back-to-back intervals; the run for ``[start, end)`` is due at ``end`` (``catchup`` as described above)."""

    def _steps(self, anchor: datetime | None) -> tuple[Step, Step]:
        """``(after, before)``: from an instant to the next / previous interval boundary, strictly.

        ``anchor``: the DAG's ``start_date`` (None for a manual run), for schedules whose grid starts there.
        """
        raise NotImplementedError

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The latest complete interval before ``run_after``."""
        after, before = self._steps(None)
        end = at_or_before(ensure_aware(run_after).astimezone(UTC), after, before)
        return DataInterval(before(end), end)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if restriction.earliest is None:
            return None
        after, before = self._steps(restriction.earliest)
        earliest = at_or_after(restriction.earliest, after, before)
        if not restriction.catchup:  # skip to the latest complete interval, never before earliest
            earliest = max(before(at_or_before(utcnow(), after, before)), earliest)
        if last_automated_data_interval is None:
            start = earliest
        else:
            last_end = ensure_aware(last_automated_data_interval.end).astimezone(UTC)
            start = max(at_or_before(last_end, after, before), earliest)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo.interval(start, after(start))


class CronDataIntervalTimetable(_DataIntervalTimetable):
    """A cron expression whose fire times bound the data intervals (Airflow 2's meaning of a cron string).

    ``CronDataIntervalTimetable(cron, timezone)``; raises ``ScheduleError`` for a bad expression.
    """

    def __init__(self, cron: str, timezone: str | tzinfo) -> None:
        self._cron = CronSchedule(cron, timezone)

    @property
    def summary(self) -> str:
        return self._cron.expression

    def _steps(self, anchor: datetime | None) -> tuple[Step, Step]:
        return self._cron.after, self._cron.before

    def serialize(self) -> dict[str, Any]:
        return {"expression": self._cron.expression, "timezone": tz_name(self._cron.tz)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(str(data["expression"]), tz_from_name(str(data["timezone"])))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DeltaDataIntervalTimetable(_DataIntervalTimetable):
    """Intervals of fixed length ``delta`` (a ``timedelta`` or ``relativedelta``), anchored at ``start_date``.

    Raises ``ScheduleError`` if ``delta`` is not positive.
    """

    def __init__(self, delta: Delta) -> None:
        check_delta(delta, "schedule interval")
        self._delta = delta

    @property
    def summary(self) -> str:
        return delta_summary(self._delta)

    def _k(self, anchor: datetime, t: datetime) -> int:
        """How many whole deltas from ``anchor`` to ``t``."""
        t = ensure_aware(t)
        if isinstance(self._delta, timedelta):
            return (t - anchor) // self._delta
        # A relativedelta has no fixed length: estimate from its first step, then correct (a few steps).
        first = (anchor + self._delta) - anchor
        k = int((t - anchor) / first)
        while anchor + (k + 1) * self._delta <= t:
            k += 1
        while anchor + k * self._delta > t:
            k -= 1
        return k

    def _steps(self, anchor: datetime | None) -> tuple[Step, Step]:
        grid = anchor or _EPOCH

        def after(t: datetime) -> datetime:
            return grid + (self._k(grid, t) + 1) * self._delta  # type: ignore[no-any-return]

        def before(t: datetime) -> datetime:
            at: datetime = grid + self._k(grid, t) * self._delta
            return at - self._delta if at == ensure_aware(t) else at

        return after, before

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """``[run_after - delta, run_after]`` (Airflow's choice: needs no anchor)."""
        return DataInterval(run_after - self._delta, run_after)

    def serialize(self) -> dict[str, Any]:
        return {"delta": encode_delta(self._delta)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(decode_delta(data["delta"]))


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
