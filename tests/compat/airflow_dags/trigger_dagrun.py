"""Airflow 3 style: TriggerDagRunOperator triggers another DAG with a templated conf."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

with DAG(
    dag_id="compat_trigger_target",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={"source": Param("manual", type="string")},
):

    @task
    def receive(params=None):
        assert params["source"] in ("manual", "compat_trigger_dagrun"), params
        return params["source"]

    receive()

with DAG(dag_id="compat_trigger_dagrun", schedule=None, start_date=datetime(2024, 1, 1)):
    trigger = TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="compat_trigger_target",
        trigger_run_id="triggered_{{ run_id }}",
        conf={"source": "{{ dag.dag_id }}"},
        # no wait_for_completion here: the suite also runs on the sequential executor (one try at a time), where a
        # waiting task would hold the only slot its triggered run needs (as on Airflow's SequentialExecutor)
    )

    @task
    def check(ti=None, run_id=None):
        assert ti.xcom_pull(task_ids="trigger", key="trigger_run_id") == f"triggered_{run_id}"
        assert ti.xcom_pull(task_ids="trigger", key="trigger_dag_id") == "compat_trigger_target"

    trigger >> check()
