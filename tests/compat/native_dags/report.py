"""The headrace-native twin of ../airflow_dags/team_a/report.py (the helper inlined)."""

from datetime import datetime

from headrace import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def compat_team_a_report():
    @task
    def greet() -> str:
        return "hello team a"

    greet()


compat_team_a_report()
