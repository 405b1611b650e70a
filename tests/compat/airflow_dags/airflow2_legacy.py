"""Airflow 2 style: spellings Airflow 3 removed (schedule_interval, days_ago, DummyOperator, provide_context)."""

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.dummy import DummyOperator
from airflow.operators.python import PythonOperator
from airflow.utils.dates import days_ago

default_args = {"owner": "data", "retries": 1}


def announce(**context):
    # Airflow 2 code reads the removed context key; Airflow 3 calls it logical_date
    when = context["execution_date"]
    assert when == context["logical_date"]
    return str(when)


with DAG(
    "compat_airflow2_legacy",
    default_args=default_args,
    schedule_interval="@daily",  # Airflow 2's argument
    start_date=days_ago(2),
    catchup=False,
) as dag:
    start = DummyOperator(task_id="start")
    say = PythonOperator(task_id="announce", python_callable=announce, provide_context=True)
    echo = BashOperator(task_id="echo", bash_command="echo run of {{ execution_date }}")
    start >> say >> echo
