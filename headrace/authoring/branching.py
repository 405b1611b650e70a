"""Branch operators that choose by time: ``BaseBranchOperator``, ``LatestOnlyOperator``,
``BranchDayOfWeekOperator`` and ``BranchDateTimeOperator`` (Airflow's standard provider, same
arguments and meaning). Import them from ``headrace.operators``.

A branch operator's ``choose_branch(context)`` returns the task id(s) — or task group id(s) — to
follow; every other task directly downstream is skipped, and the tasks below those follow their
trigger rules (``all_success`` ones are skipped too), as in Airflow.
"""

from __future__ import annotations

import enum
from abc import abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from headrace.authoring.schedules import DataInterval, TimeRestriction, ensure_aware, utcnow
from headrace.authoring.task import BaseOperator
from headrace.exceptions import DagDefinitionError
from headrace.types import Context


def _ids(value: str | Iterable[str] | None, what: str, task_id: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        ids = list(value)
    except TypeError:
        raise TypeError(f"{what} of task {task_id!r} must be a task_id or a list of them, got {value!r}") from None
    if not all(isinstance(i, str) for i in ids):
        raise TypeError(f"{what} of task {task_id!r} must be a task_id or a list of them, got {value!r}")
    return ids


class BaseBranchOperator(BaseOperator):
    """Base of branch operators: subclasses implement ``choose_branch(context)``.

    ``execute`` follows the returned task id(s) — a task group id stands for the group's tasks
    directly downstream of this one — and skips every other direct downstream task. Returns what
    ``choose_branch`` returned. Raises ``TypeError`` for a result that is not a task id or a list of
    them, and ``ValueError`` naming ids that are neither directly downstream nor a task group
    holding a direct downstream task.
    """

    ui_color = "#ffefeb"

    @abstractmethod
    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        """The task id(s) or task group id(s) to follow; None or ``[]``: skip every direct downstream task."""

    def execute(self, context: Context) -> Any:
        """Choose, then skip the direct downstream tasks not chosen; return the choice."""
        result = self.choose_branch(context)
        self.skip_all_except(context, result)
        return result

    def skip_all_except(self, context: Context, branch_task_ids: str | Iterable[str] | None) -> None:
        """Skip every direct downstream task except ``branch_task_ids`` (task or task group ids)."""
        skip_all_except(self, context, branch_task_ids)


def skip_all_except(task: BaseOperator, context: Context, branch_task_ids: str | Iterable[str] | None) -> None:
    """Skip every task directly downstream of ``task`` except ``branch_task_ids`` (task ids, or task group ids
    standing for their members directly downstream). Raises ``TypeError`` / ``ValueError`` as
    :class:`BaseBranchOperator` says."""
    chosen: set[str] = set()
    unknown: list[str] = []
    groups = task.dag.task_group_dict if task.dag is not None else {}
    for tid in _ids(branch_task_ids, "the branch", task.task_id):
        if tid in task.downstream_task_ids:
            chosen.add(tid)
        elif tid in groups:
            members = {t.task_id for t in groups[tid].iter_tasks()} & task.downstream_task_ids
            if not members:
                unknown.append(tid)
            chosen |= members
        else:
            unknown.append(tid)
    if unknown:
        raise ValueError(
            f"branch task {task.task_id!r} chose {sorted(unknown)}, which are not directly downstream "
            f"of it (downstream: {sorted(task.downstream_task_ids)})"
        )
    to_skip = sorted(task.downstream_task_ids - chosen)
    if to_skip:
        print(f"Following branch {sorted(chosen)}; skipping {to_skip}", flush=True)
        context["ti"].skip(to_skip)


class LatestOnlyOperator(BaseBranchOperator):
    """Skip the direct downstream tasks unless this run is the latest scheduled one (Airflow's rule).

    A manual run always proceeds. A scheduled run proceeds when now is in ``(left, right]``: ``left``
    is the start of the run's data interval (its logical date for trigger timetables), ``right``
    the end of the data interval of the run the timetable would make next. When the timetable
    makes no further run, the run is the last one and proceeds.
    """

    ui_color = "#e9ffdb"

    def choose_branch(self, context: Context) -> list[str]:
        """All direct downstream ids when the run is the latest (or manual); ``[]`` otherwise."""
        downstream = sorted(self.downstream_task_ids)
        run = context["dag_run"]
        if getattr(run, "run_type", "manual") == "manual":
            print("Manually triggered DAG run: allowing execution to proceed.", flush=True)
            return downstream
        window = self.compare_window(run)
        if window is None:
            print("Last scheduled run: allowing execution to proceed.", flush=True)
            return downstream
        left, right = window
        now = utcnow()
        print(f"Checking latest only with left_window: {left} right_window: {right} now: {now}", flush=True)
        if not left < now <= right:
            print("Not latest run, skipping downstream.", flush=True)
            return []
        print("Latest, allowing execution to proceed.", flush=True)
        return downstream

    def compare_window(self, run: Any) -> tuple[datetime, datetime] | None:
        """``(left, right)`` for the run (``dag_run`` of the context), or None when no run comes after it."""
        if self.dag is None:
            raise DagDefinitionError(f"task {self.task_id!r} is not in a DAG")
        when = run.logical_date
        current = DataInterval(run.data_interval_start or when, run.data_interval_end or when)
        timetable = self.dag.timetable
        before = timetable.next_dagrun_info(
            last_automated_data_interval=current,
            restriction=TimeRestriction(None, current.end - timedelta(microseconds=1), True),
        )
        left = before.data_interval.end if before is not None else current.start
        after = timetable.next_dagrun_info(
            last_automated_data_interval=current, restriction=TimeRestriction(current.end, None, True)
        )
        if after is None:
            return None
        return ensure_aware(left), ensure_aware(after.data_interval.end)


class WeekDay(enum.IntEnum):
    """Days of the week, ISO numbered (Monday 1 … Sunday 7), as Airflow's ``WeekDay``."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> int:
        """The ISO number of a day's full English name (any case). Raises ``AttributeError`` for another string."""
        sanitized = week_day_str.upper()
        if sanitized not in cls.__members__:
            raise AttributeError(f'Invalid Week Day passed: "{week_day_str}"')
        return int(cls[sanitized])

    @classmethod
    def convert(cls, day: str | WeekDay) -> int:
        """A day (name or ``WeekDay``) as its ISO number."""
        if isinstance(day, WeekDay):
            return int(day)
        return cls.get_weekday_number(week_day_str=day)

    @classmethod
    def validate_week_day(cls, week_day: str | WeekDay | Iterable[str | WeekDay]) -> set[int]:
        """The ISO numbers of one day or a collection of days. Raises ``TypeError`` for anything else."""
        if isinstance(week_day, (str, WeekDay)):
            return {cls.convert(week_day)}
        if isinstance(week_day, Iterable):
            days = list(week_day)
            if all(isinstance(day, (str, WeekDay)) for day in days):
                return {cls.convert(day) for day in days}
        raise TypeError(
            f"Unsupported Type for week_day parameter: {type(week_day).__name__}. "
            "Input should be iterable type: str, set, list, dict or Weekday enum type"
        )


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follow ``follow_task_ids_if_true`` when today is one of ``week_day``, else ``follow_task_ids_if_false``.

    ``week_day``: a day's full name (``"Monday"``, any case), a ``WeekDay``, or a collection of
    them. ``use_task_logical_date=True`` looks at the run's logical date (useful for backfills)
    instead of today's date in the DAG's time zone. Raises ``DagDefinitionError`` naming the task for
    a bad ``week_day``.
    """

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        try:
            self._week_day_num = WeekDay.validate_week_day(week_day)
        except (AttributeError, TypeError) as exc:
            raise DagDefinitionError(f"task {self.task_id!r}: week_day: {exc}") from None

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        """The true branch when the day (logical date's or today's in the DAG's time zone) is one of ``week_day``."""
        if self.use_task_logical_date:
            now = context["logical_date"]
        else:
            now = utcnow().astimezone(_dag_tz(self))
        if now.isoweekday() in self._week_day_num:
            return self.follow_task_ids_if_true
        return self.follow_task_ids_if_false


def _dag_tz(task: BaseOperator) -> tzinfo:
    zone = task.dag.timezone if task.dag is not None else None
    return zone if isinstance(zone, tzinfo) else UTC


def target_times_as_dates(
    base_date: datetime, lower: datetime | time | None, upper: datetime | time | None
) -> tuple[datetime | None, datetime | None]:
    """``lower`` and ``upper`` as datetimes: a ``time`` is put on ``base_date``'s day; when both are times
    (or one is) and ``upper`` ends before ``lower``, ``upper`` moves to the next day (a window over midnight)."""
    if isinstance(lower, datetime) and isinstance(upper, datetime):
        return lower, upper
    low = datetime.combine(base_date.date(), lower) if isinstance(lower, time) else lower
    up = datetime.combine(base_date.date(), upper) if isinstance(upper, time) else upper
    if low is None or up is None:
        return low, up
    if up.replace(tzinfo=None) < low.replace(tzinfo=None):
        up += timedelta(days=1)
    return low, up


class BranchDateTimeOperator(BaseBranchOperator):
    """Follow ``follow_task_ids_if_true`` when now is within ``[target_lower, target_upper]``, else the false branch.

    Each bound is a ``datetime``, a ``time`` (on the compared date's day; ``upper`` before ``lower``
    spans midnight) or None (unbounded); naive values are in the DAG's time zone.
    ``use_task_logical_date=True`` compares the run's logical date instead of now. Raises
    ``DagDefinitionError`` naming the task when both bounds are None.
    """

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        target_lower: datetime | time | None,
        target_upper: datetime | time | None,
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise DagDefinitionError(
                f"task {self.task_id!r}: Both target_upper and target_lower are None. At least one "
                "must be defined to be compared to the current datetime"
            )
        self.target_lower = target_lower
        self.target_upper = target_upper
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.use_task_logical_date = use_task_logical_date

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        """The true branch when the compared instant is within the bounds."""
        now: datetime = context["logical_date"] if self.use_task_logical_date else utcnow()
        zone = _dag_tz(self)
        lower, upper = target_times_as_dates(now, self.target_lower, self.target_upper)
        if upper is not None and _aware(upper, zone) < now:
            return self.follow_task_ids_if_false
        if lower is not None and _aware(lower, zone) > now:
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true


def _aware(value: datetime, zone: tzinfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


__all__ = [
    "BaseBranchOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "LatestOnlyOperator",
    "WeekDay",
    "skip_all_except",
    "target_times_as_dates",
]
