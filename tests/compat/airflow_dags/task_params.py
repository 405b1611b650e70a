"""Airflow 3 style: task-level params (classic operators, @task, task group default_args) over the DAG's."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, TaskGroup, task


def check_group(params):
    assert dict(params) == {"env": "qa", "count": 3, "region": "us"}, params


with DAG(
    dag_id="compat_task_params",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"env": "dev", "count": Param(3, type="integer", minimum=1)},
    default_args={"params": {"region": "eu"}},
    tags=["compat"],
):
    echo = BashOperator(
        task_id="echo",
        bash_command='test "{{ params.env }} {{ params.count }} {{ params.region }}" = "dev 5 eu"',
        params={"count": Param(5, type="integer", maximum=9)},
    )

    @task(params={"env": "prod"})
    def own(**context):
        assert context["params"]["env"] == "prod" and context["params"]["count"] == 3
        return context["params"]["region"]

    with TaskGroup("grp", default_args={"params": {"region": "us"}}) as grp:
        PythonOperator(task_id="check", python_callable=check_group, params={"env": "qa"})

    echo >> own() >> grp
