"""LatestOnlyOperator's window, the day-of-week and date-time branches, and their argument errors (in process)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from headrace.authoring.branching import target_times_as_dates
from headrace.authoring.dag import DAG
from headrace.authoring.schedules import clock_at
from headrace.authoring.task_group import TaskGroup
from headrace.authoring.timetables import CronDataIntervalTimetable
from headrace.exceptions import DagDefinitionError
from headrace.operators import (
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    EmptyOperator,
    LatestOnlyOperator,
    WeekDay,
)

from .conftest import RUN


def _latest_dag(schedule: Any) -> DAG:
    with DAG("latest", schedule=schedule, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        LatestOnlyOperator(task_id="latest") >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    return dag


def _scheduled(logical: datetime, start: datetime, end: datetime) -> Any:
    return replace(RUN, run_type="scheduled", logical_date=logical, data_interval_start=start, data_interval_end=end)


def test_latest_only_with_a_cron_trigger_timetable(runner: Any) -> None:
    dag = _latest_dag("@daily")
    jan2 = datetime(2024, 1, 2, tzinfo=UTC)
    r = runner(dag, _scheduled(jan2, jan2, jan2))
    with clock_at(jan2 + timedelta(hours=5)):  # within (Jan 2, Jan 3]: the latest run
        assert r.run_task("latest") == ["a", "b"]
    assert r.skipped == set()
    with clock_at(jan2 + timedelta(days=1, hours=1)):  # the Jan 3 run exists by now
        assert r.run_task("latest") == []
    assert r.skipped == {"a", "b"}


def test_latest_only_with_data_intervals_and_manual_runs(runner: Any) -> None:
    dag = _latest_dag(CronDataIntervalTimetable("0 0 * * *", UTC))
    jan1, jan2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    r = runner(dag, _scheduled(jan1, jan1, jan2))  # the run for [Jan 1, Jan 2), made just after Jan 2
    with clock_at(jan2 + timedelta(hours=1)):
        assert r.run_task("latest") == ["a", "b"]
    with clock_at(jan2 + timedelta(days=2)):
        assert r.run_task("latest") == []
    manual = runner(dag, replace(RUN, run_type="manual"))
    with clock_at(jan2 + timedelta(days=30)):
        assert manual.run_task("latest") == ["a", "b"]


def test_latest_only_proceeds_when_no_run_follows(runner: Any) -> None:
    dag = _latest_dag("@once")
    jan1 = datetime(2024, 1, 1, tzinfo=UTC)
    r = runner(dag, _scheduled(jan1, jan1, jan1))
    with clock_at(jan1 + timedelta(days=365)):
        assert r.run_task("latest") == ["a", "b"]


def test_day_of_week(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        by_logical = BranchDayOfWeekOperator(
            task_id="by_logical",
            week_day=["tuesday", WeekDay.WEDNESDAY],
            use_task_logical_date=True,
            follow_task_ids_if_true="yes",
            follow_task_ids_if_false=["no", "no_either"],
        )
        by_now = BranchDayOfWeekOperator(
            task_id="by_now", week_day="Saturday", follow_task_ids_if_true="yes", follow_task_ids_if_false="no"
        )
        yes, no, no_either = (EmptyOperator(task_id=t) for t in ("yes", "no", "no_either"))
        by_logical >> [yes, no, no_either]
        by_now >> [yes, no]
    r = runner(dag)  # RUN's logical date is Tuesday 2024-01-02
    assert r.run_task("by_logical") == "yes"
    assert r.skipped == {"no", "no_either"}
    with clock_at(datetime(2024, 1, 6, 12, tzinfo=UTC)):  # a Saturday
        assert r.run_task("by_now") == "yes"
    with clock_at(datetime(2024, 1, 7, 12, tzinfo=UTC)):
        assert r.run_task("by_now") == "no"


def test_day_of_week_argument_errors() -> None:
    with DAG("d"):
        with pytest.raises(DagDefinitionError, match=r"task 'bad': week_day: Invalid Week Day passed: \"Funday\""):
            BranchDayOfWeekOperator(
                task_id="bad", week_day="Funday", follow_task_ids_if_true="a", follow_task_ids_if_false="b"
            )
        with pytest.raises(DagDefinitionError, match="Unsupported Type for week_day parameter: int"):
            BranchDayOfWeekOperator(
                task_id="worse", week_day=3, follow_task_ids_if_true="a", follow_task_ids_if_false="b"
            )  # type: ignore[arg-type]
    assert WeekDay.validate_week_day({"monday", WeekDay.SUNDAY}) == {1, 7}


def test_date_time_windows(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        morning = BranchDateTimeOperator(
            task_id="morning",
            target_lower=time(1),
            target_upper=time(4),
            use_task_logical_date=True,
            follow_task_ids_if_true="in",
            follow_task_ids_if_false="out",
        )
        until = BranchDateTimeOperator(
            task_id="until",
            target_lower=None,
            target_upper=datetime(2024, 1, 1),
            follow_task_ids_if_true="in",
            follow_task_ids_if_false="out",
        )
        morning >> [EmptyOperator(task_id="in"), EmptyOperator(task_id="out")]
        until >> dag.get_task("in")
        until >> dag.get_task("out")
    r = runner(dag)  # logical date 2024-01-02T03:04:05Z
    assert r.run_task("morning") == "in"
    assert r.skipped == {"out"}
    assert r.run_task("until") == "out"  # now is after 2024-01-01


def test_date_time_needs_a_bound() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="task 'w': Both target_upper and target_lower are None"):
        BranchDateTimeOperator(
            task_id="w", target_lower=None, target_upper=None, follow_task_ids_if_true="a", follow_task_ids_if_false="b"
        )


def test_target_times_over_midnight() -> None:
    base = datetime(2024, 1, 2, 23, 30)
    assert target_times_as_dates(base, time(22), time(6)) == (datetime(2024, 1, 2, 22), datetime(2024, 1, 3, 6))
    assert target_times_as_dates(base, None, time(6)) == (None, datetime(2024, 1, 2, 6))


def test_branch_to_a_task_group_follows_its_members(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        branch = BranchDayOfWeekOperator(
            task_id="branch",
            week_day="Tuesday",
            use_task_logical_date=True,
            follow_task_ids_if_true="group",
            follow_task_ids_if_false="other",
        )
        with TaskGroup("group") as group:
            EmptyOperator(task_id="x")
        branch >> [group, EmptyOperator(task_id="other")]
    r = runner(dag)
    assert r.run_task("branch") == "group"
    assert r.skipped == {"other"}
