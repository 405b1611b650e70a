"""Airflow 3 style: dates and time zones from pendulum, as most Airflow DAG files write them."""

from __future__ import annotations

import pendulum

from airflow.sdk import DAG, task
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.timetables.trigger import CronTriggerTimetable

with DAG(
    dag_id="compat_pendulum",
    schedule=None,
    start_date=pendulum.datetime(2021, 1, 1, tz="Europe/Paris"),
    end_date=pendulum.datetime(2099, 12, 31, tz="UTC"),
):
    trigger = TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="compat_pendulum_target",
        trigger_run_id="from_pendulum_{{ run_id }}",
        logical_date=pendulum.datetime(2022, 3, 4, 5, 6, tz="Asia/Tokyo"),
    )

    @task
    def check(ti=None, dag=None):
        assert dag.start_date == pendulum.datetime(2021, 1, 1, tz="Europe/Paris"), dag.start_date
        assert dag.end_date == pendulum.datetime(2099, 12, 31, tz="UTC"), dag.end_date
        when = pendulum.parse(ti.xcom_pull(task_ids="trigger", key="trigger_logical_date_iso"))
        assert when == pendulum.datetime(2022, 3, 4, 5, 6, tz="Asia/Tokyo"), when

    trigger >> check()

# A time zone from pendulum in a timetable, the start date in default_args (the DAG's own start_date then)
with DAG(
    dag_id="compat_pendulum_target",
    schedule=CronTriggerTimetable("30 6 * * *", timezone=pendulum.timezone("Europe/Paris")),
    default_args={"start_date": pendulum.datetime(2021, 1, 2, tz="UTC")},
    catchup=False,
):

    @task
    def land(dag=None):
        assert dag.start_date == pendulum.datetime(2021, 1, 2, tz="UTC"), dag.start_date
        assert dag.timetable.serialize()["timezone"] == "Europe/Paris", dag.timetable.serialize()
        return "landed"

    land()
