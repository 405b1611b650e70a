"""Schedules, the base of every timetable: when DAG runs are due and which data interval each covers.

The names and the interface are Airflow 3's (``airflow.timetables.base``), so a custom timetable
written for Airflow ports by changing its imports:

* :class:`DataInterval` ``(start, end)`` and :class:`DagRunInfo` ``(run_after, data_interval)``,
  whose ``logical_date`` is ``data_interval.start``;
* :class:`TimeRestriction` ``(earliest, latest, catchup)``: the DAG's ``start_date``, ``end_date``
  (both inclusive) and ``catchup``;
* :class:`Timetable`: ``next_dagrun_info(*, last_automated_data_interval, restriction)``,
  ``infer_manual_data_interval(*, run_after)``, ``serialize()`` / ``deserialize(data)``,
  ``validate()``, ``summary``, ``description``, ``periodic``, ``can_be_scheduled``,
  ``active_runs_limit``.

The built-in timetables (cron and delta, trigger and data-interval, events, ``@once``,
``@continuous``, ``None``) live in :mod:`headrace.authoring.timetables`, with
``make_timetable`` (what ``DAG(schedule=...)`` becomes) and the serialized form.

The clock: timetables that need "now" (``catchup=False``, ``@continuous``) call
:func:`utcnow`; the scheduler evaluates them under :func:`clock_at` so that a pass sees one
instant and tests can pin it. Nothing else here reads the clock. All datetimes returned by the
built-in timetables are UTC-aware.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from headrace.exceptions import ScheduleError


class DataInterval(NamedTuple):
    """The span of data one DAG run covers: ``[start, end)``, both aware (Airflow's ``DataInterval``)."""

    start: datetime
    end: datetime

    @classmethod
    def exact(cls, at: datetime) -> DataInterval:
        """The zero-length interval ``[at, at]`` (a run about one instant: ``@once``, events, triggers)."""
        return cls(at, at)


class TimeRestriction(NamedTuple):
    """What the DAG allows (Airflow's ``TimeRestriction``): no run before ``earliest`` or after ``latest``.

    Both bounds are inclusive and aware, or None (no bound); they come from the DAG's
    ``start_date`` and ``end_date``. ``catchup=False``: missed runs before now are not made.
    """

    earliest: datetime | None
    latest: datetime | None
    catchup: bool


class DagRunInfo(NamedTuple):
    """The next DAG run a timetable asks for (Airflow's ``DagRunInfo``)."""

    run_after: datetime
    """The earliest time the run may be created, aware."""
    data_interval: DataInterval
    """The data interval the run covers."""

    @classmethod
    def exact(cls, at: datetime) -> DagRunInfo:
        """A run at ``at`` about the instant ``at``."""
        return cls(at, DataInterval.exact(at))

    @classmethod
    def interval(cls, start: datetime, end: datetime) -> DagRunInfo:
        """A run about ``[start, end)``, due once the interval has ended (``run_after = end``)."""
        return cls(end, DataInterval(start, end))

    @property
    def logical_date(self) -> datetime:
        """The run's logical date: the start of its data interval."""
        return self.data_interval.start


_CLOCK: ContextVar[datetime | None] = ContextVar("headrace_timetable_clock", default=None)


def utcnow() -> datetime:
    """Now, UTC-aware: the instant pinned by :func:`clock_at` if any, else the system clock."""
    pinned = _CLOCK.get()
    return pinned if pinned is not None else datetime.now(UTC)


@contextmanager
def clock_at(now: datetime) -> Iterator[None]:
    """Evaluate timetables as if it were ``now`` (naive: UTC) inside the ``with`` block."""
    token = _CLOCK.set(ensure_aware(now).astimezone(UTC))
    try:
        yield
    finally:
        _CLOCK.reset(token)


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


class Timetable:
    """The base of every timetable (Airflow's ``Timetable`` protocol, as a class to subclass).

    A custom timetable overrides :meth:`next_dagrun_info` (and usually
    :meth:`infer_manual_data_interval`, :meth:`serialize` and :meth:`deserialize`) and is passed
    as ``DAG(schedule=MyTimetable(...))``. It must live in a module the scheduler can import by
    name (a module beside the DAG files, or an installed package), not in the DAG file itself:
    the scheduler imports ``type(tt).__module__`` to rebuild it and never runs DAG files.
    """

    description: str = ""
    """Human-readable description, shown in the UI (e.g. "At 21:30, only on Friday")."""
    periodic: bool = True
    """False for schedules that are not periodic (``None``, ``@once``)."""
    can_be_scheduled: bool = True
    """False when the scheduler never creates runs on its own (``schedule=None``)."""
    run_ordering: Sequence[str] = ("data_interval_end", "logical_date")
    """How the UI orders this DAG's runs (DAG run field names)."""
    active_runs_limit: int | None = None
    """The most runs that may be active at once (the DAG's ``max_active_runs`` is capped to it)."""

    @property
    def summary(self) -> str:
        """A short summary for the UI and CLI: the cron string, ``@once``… (default: the class name)."""
        return type(self).__name__

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        """Rebuild a timetable from :meth:`serialize`'s dict (default: ``cls()``)."""
        return cls()

    def serialize(self) -> dict[str, Any]:
        """A JSON-able dict of this timetable's arguments, for :meth:`deserialize` (default: ``{}``)."""
        return {}

    def validate(self) -> None:
        """Raise ``ScheduleError`` if the timetable is wrongly specified (called when the DAG is parsed)."""

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The data interval of a run triggered by hand at ``run_after`` (default: the instant itself)."""
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        """The run after the DAG's last scheduled (or backfill) run, due or not; None: no further run.

        ``last_automated_data_interval`` is that run's data interval (None before the first run);
        manual runs do not count. Subclasses must override this.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement next_dagrun_info")

    # --- headrace's conveniences over next_dagrun_info ----------------------------

    def next_run_info(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        """:meth:`next_dagrun_info` for a DAG with these dates, evaluated at ``now`` (:func:`clock_at`)."""
        restriction = TimeRestriction(
            None if start_date is None else ensure_aware(start_date).astimezone(UTC),
            None if end_date is None else ensure_aware(end_date).astimezone(UTC),
            catchup,
        )
        with clock_at(now):
            return self.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)

    def next_run(
        self,
        last: DataInterval | None,
        *,
        start_date: datetime | None,
        end_date: datetime | None,
        catchup: bool,
        now: datetime,
    ) -> DagRunInfo | None:
        """The next run if it is due at ``now`` (``run_after <= now``), else None."""
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
        """When the next run becomes due (may be ``<= now``), or None if never."""
        info = self.next_run_info(last, start_date=start_date, end_date=end_date, catchup=catchup, now=now)
        return None if info is None else info.run_after

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timetable) and type(other) is type(self) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, repr(sorted(self.serialize().items()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary!r})"
