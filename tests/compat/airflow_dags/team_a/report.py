"""A DAG in a subfolder importing a helper module from the DAGs folder (on sys.path, as in Airflow)."""

from datetime import datetime

from airflow.sdk import dag, task

from common.helpers import greeting


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def compat_team_a_report():
    @task
    def greet() -> str:
        text = greeting("team a")
        assert text == "hello team a"
        return text

    greet()


compat_team_a_report()
