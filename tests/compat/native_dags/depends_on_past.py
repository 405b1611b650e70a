"""The headrace-native twin of ../airflow_dags/depends_on_past.py."""

from __future__ import annotations

from datetime import datetime

from headrace import DAG, task
from headrace.operators import EmptyOperator
from headrace import WeightRule

with DAG(
    dag_id="compat_depends_on_past",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"depends_on_past": True, "weight_rule": "upstream"},
):

    @task(wait_for_downstream=True, priority_weight=5)
    def extract() -> int:
        return 1

    @task(ignore_first_depends_on_past=True, weight_rule=WeightRule.ABSOLUTE)
    def load(n: int) -> None:
        assert n == 1, n

    load(extract()) >> EmptyOperator(task_id="done", depends_on_past=False)
