"""The headrace-native twin of ../airflow_dags/standard_branching.py."""

from __future__ import annotations

from datetime import datetime, time

from headrace import DAG, task
from headrace.operators import (
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    EmptyOperator,
    LatestOnlyOperator,
    WeekDay,
)

EVERY_DAY = {WeekDay.MONDAY, WeekDay.TUESDAY, WeekDay.WEDNESDAY, WeekDay.THURSDAY, "Friday", "saturday", "SUNDAY"}

with DAG(dag_id="compat_standard_branching", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    latest_only = LatestOnlyOperator(task_id="latest_only")  # a manual run always proceeds
    after_latest = EmptyOperator(task_id="after_latest")

    day_check = BranchDayOfWeekOperator(
        task_id="day_check",
        week_day=EVERY_DAY,
        follow_task_ids_if_true="any_day",
        follow_task_ids_if_false="no_day",
    )
    time_check = BranchDateTimeOperator(
        task_id="time_check",
        target_lower=datetime(2000, 1, 1),
        target_upper=None,
        follow_task_ids_if_true="after_2000",
        follow_task_ids_if_false="before_2000",
    )
    logical_check = BranchDateTimeOperator(
        task_id="logical_check",
        target_lower=time(0, 0),
        target_upper=time(23, 59, 59, 999999),
        use_task_logical_date=True,
        follow_task_ids_if_true="in_the_day",
        follow_task_ids_if_false="never",
    )

    @task(trigger_rule="none_failed")
    def joined():
        return "joined"

    latest_only >> after_latest
    day_check >> [EmptyOperator(task_id="any_day"), EmptyOperator(task_id="no_day")] >> joined()
    time_check >> [EmptyOperator(task_id="after_2000"), EmptyOperator(task_id="before_2000")]
    logical_check >> [EmptyOperator(task_id="in_the_day"), EmptyOperator(task_id="never")]
