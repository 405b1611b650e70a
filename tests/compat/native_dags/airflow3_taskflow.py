"""The headrace-native twin of ../airflow_dags/airflow3_taskflow.py."""

from __future__ import annotations

from datetime import datetime

from headrace import DAG, TriggerRule, task
from headrace.operators import BashOperator, EmptyOperator, PythonOperator

with DAG(dag_id="compat_airflow3_taskflow", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task
    def total(rows: list[int]) -> int:
        assert rows == [1, 2, 3], rows
        return sum(rows)

    def check(ti, logical_date, **_):
        assert ti.xcom_pull(task_ids="total") == 6
        assert logical_date is not None

    checked = PythonOperator(task_id="check", python_callable=check)
    report = BashOperator(task_id="report", bash_command='test -n "{{ ds }}" && echo "done for {{ logical_date }}"')
    end = EmptyOperator(task_id="end", trigger_rule=TriggerRule.ALL_DONE)

    total(extract()) >> checked >> report >> end
