"""Airflow 3 style: the template context, macros, filters and the DAG's template options."""

from __future__ import annotations

from datetime import datetime

from airflow.macros import ds_add
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, get_current_context, task


def shout(text: str) -> str:
    return text.upper() + "!"


with DAG(
    dag_id="compat_templates",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    user_defined_macros={"team": "data", "plus_one": lambda n: n + 1},
    user_defined_filters={"shout": shout},
    tags=["compat"],
):
    render = BashOperator(
        task_id="render",
        bash_command=(
            'test "{{ macros.ds_add(ds, 1) }}" = "{{ (logical_date + macros.timedelta(days=1)) | ds }}" '
            '&& test "{{ macros.ds_format(ds, "%Y-%m-%d", "%Y%m%d") }}" = "{{ ds_nodash }}" '
            '&& test "{{ task_instance_key_str }}" = "compat_templates__render__{{ ds_nodash }}" '
            '&& test "{{ ts_nodash_with_tz }}" = "{{ logical_date | ts_nodash_with_tz }}" '
            '&& test "{{ team | shout }} {{ plus_one(1) }}" = "DATA! 2" '
            '&& test "{{ expanded_ti_count }}" = "None" && echo "{{ ds }}"'
        ),
    )

    def from_context(ds, macros, prev_data_interval_start_success, prev_start_date_success, **context):
        assert macros.ds_add(ds, -1) == ds_add(ds, -1)
        assert prev_data_interval_start_success is None and prev_start_date_success is None  # a first run
        assert context["task_instance_key_str"].startswith("compat_templates__from_context__")
        assert context["ti"].xcom_pull(task_ids="render") == ds

    @task
    def current() -> str:
        context = get_current_context()
        return context["macros"].ds_format(context["ds"], "%Y-%m-%d", "%d.%m.%Y")

    render >> PythonOperator(task_id="from_context", python_callable=from_context) >> current()
