"""XComArgs (and ``.output``) in classic operators' templated fields and ``op_kwargs``: they add the
dependency at parse time and resolve to the upstream's value when the fields render, as in Airflow — through the
DAG processor, the scheduler and the local executor, on SQLite and PostgreSQL."""

from __future__ import annotations

from headrace.config import Settings
from headrace.db.engine import Database

from .helpers import FAST, parse_and_trigger, run_scheduler_until_done, run_states, ti_states, write_dag

DAG = """
    from datetime import datetime

    from headrace import DAG, task
    from headrace.operators import BashOperator, PythonOperator

    with DAG("xcom_refs", schedule=None, start_date=datetime(2026, 1, 1)):

        @task
        def command():
            return "echo '{{ raw }}' | grep -qF '{{'"  # pulled, not rendered (rendering it would fail: raw)

        def number():
            return 41

        def check(value, text):
            assert value == 41 and text == "{{ not rendered }}", (value, text)

        @task
        def text():
            return "{{ not rendered }}"

        made = PythonOperator(task_id="number", python_callable=number)
        BashOperator(task_id="bash", bash_command=command())
        PythonOperator(task_id="check", python_callable=check, op_kwargs={"value": made.output, "text": text()})
"""


def test_references_in_fields_add_the_dependency_and_resolve(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "xcom_refs.py", DAG)
    parse_and_trigger(fast, db, "xcom_refs")
    run_scheduler_until_done(fast, db, timeout=120)
    assert list(run_states(db).values()) == ["success"]
    assert ti_states(db) == dict.fromkeys(["command", "bash", "number", "text", "check"], "success")
