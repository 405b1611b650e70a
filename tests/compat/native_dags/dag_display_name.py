"""The headrace-native twin of ../airflow_dags/dag_display_name.py."""

from __future__ import annotations

from datetime import datetime

from headrace import dag, task


@dag(
    dag_id="compat_dag_display_name",
    dag_display_name="Compat — display name ✓",
    is_paused_upon_creation=False,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
)
def named():
    @task
    def hello() -> str:
        return "hi"

    hello()


named()
