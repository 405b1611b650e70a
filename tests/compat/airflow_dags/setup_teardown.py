"""Airflow 3 style: setup and teardown tasks (``@setup``/``@teardown``, ``as_teardown``, the ``with`` form)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, setup, task, teardown


def _fail() -> None:
    raise RuntimeError("this teardown fails, and the DAG run still succeeds (on_failure_fail_dagrun=False)")


with DAG(dag_id="compat_setup_teardown", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

    @setup
    def create_cluster() -> str:
        return "cluster-1"

    @task
    def run_query(cluster: str) -> int:
        assert cluster == "cluster-1", cluster
        return 42

    @teardown
    def delete_cluster(cluster: str) -> None:
        assert cluster == "cluster-1", cluster

    cluster = create_cluster()
    with cluster >> delete_cluster(cluster):
        run_query(cluster)

    # the classic form: a setup made by as_teardown(setups=...), a failing teardown that does not fail the run
    make_table = PythonOperator(task_id="make_table", python_callable=lambda: "table-1")
    drop_table = PythonOperator(task_id="drop_table", python_callable=_fail).as_teardown(setups=make_table)
    load = PythonOperator(task_id="load", python_callable=lambda ti: ti.xcom_pull(task_ids="make_table"))
    make_table >> load >> drop_table
