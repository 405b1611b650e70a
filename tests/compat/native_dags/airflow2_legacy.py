"""The headrace-native twin of ../airflow_dags/airflow2_legacy.py."""

from datetime import UTC, datetime, timedelta

from headrace import DAG
from headrace.operators import BashOperator, EmptyOperator, PythonOperator


def announce(**context):
    when = context["logical_date"]
    return str(when)


with DAG(
    "compat_airflow2_legacy",
    default_args={"owner": "data", "retries": 1},
    schedule="@daily",
    start_date=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2),
    catchup=False,
):
    start = EmptyOperator(task_id="start")
    say = PythonOperator(task_id="announce", python_callable=announce)
    echo = BashOperator(task_id="echo", bash_command="echo run of {{ logical_date }}")
    start >> say >> echo
