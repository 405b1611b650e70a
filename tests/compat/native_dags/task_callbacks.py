"""The headrace-native twin of ../airflow_dags/task_callbacks.py."""

from __future__ import annotations

from datetime import datetime

from headrace.exceptions import SkipTask
from headrace import DAG, task
from headrace.operators import EmptyOperator


def mark_started(context):  # runs in the task process, before execute
    context["ti"].xcom_push(key="started_by_callback", value=context["ti"].task_id)


def note_skipped(context):  # runs in the task process, after the task skipped itself
    context["ti"].xcom_push(key="skipped_seen_by_callback", value=True)


with DAG(dag_id="compat_task_callbacks", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

    @task(on_execute_callback=mark_started)
    def work() -> None:
        pass

    @task(on_skipped_callback=note_skipped)
    def skip_me() -> None:
        raise SkipTask("nothing to do")

    @task(trigger_rule="all_done")
    def check(ti=None) -> None:
        assert ti.xcom_pull(task_ids="work", key="started_by_callback") == "work"
        assert ti.xcom_pull(task_ids="skip_me", key="skipped_seen_by_callback") is True

    [work(), skip_me()] >> check()
