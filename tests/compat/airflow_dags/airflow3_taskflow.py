"""Airflow 3 style: the Task SDK and the standard provider's operators."""

from __future__ import annotations

from datetime import datetime

# TaskFlow and the DAG from the Task SDK, as Airflow 3 writes them
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.utils.trigger_rule import TriggerRule

with DAG(
    dag_id="compat_airflow3_taskflow",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["compat"],
):

    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task
    def total(rows: list[int]) -> int:
        assert rows == [1, 2, 3], rows
        return sum(rows)

    def check(ti, logical_date, **_):  # the context by name, as Airflow passes it
        assert ti.xcom_pull(task_ids="total") == 6
        assert logical_date is not None

    checked = PythonOperator(task_id="check", python_callable=check)
    report = BashOperator(task_id="report", bash_command='test -n "{{ ds }}" && echo "done for {{ logical_date }}"')
    end = EmptyOperator(task_id="end", trigger_rule=TriggerRule.ALL_DONE)

    total(extract()) >> checked >> report >> end
