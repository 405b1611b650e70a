"""Rendered template fields recorded by real tries (scheduler + LocalExecutor + supervisors): what the UI shows."""

from __future__ import annotations

import json

from sqlalchemy import select

from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.db.models import RenderedTaskInstanceFields, TaskInstance
from headrace.secrets_store import set_variable
from headrace.supervisor.protocol import MAX_RENDERED_FIELD_CHARS, rendered_field_text
from tests.integration.helpers import FAST, parse_and_trigger, run_scheduler_until_done, ti_states, write_dag

TOKEN = "tok-rendered-5ecret"

DAG_FILE = """
    from headrace import DAG
    from headrace.operators import BashOperator, PythonOperator

    def show(**kwargs):
        print(kwargs)

    with DAG("rendered", params={"who": "ann"}):
        BashOperator(task_id="greet", bash_command="echo hi {{ params.who }} in {{ run_id }} t={{ var.value.api_token }}",
                     env={"WHERE": "{{ dag.dag_id }}"})
        PythonOperator(task_id="py", python_callable=show, op_kwargs={"n": "{{ 1 + 2 }}", "long": "{{ 'x' * 5000 }}"})
        BashOperator(task_id="broken", bash_command="echo {{ no_such_thing.attr }}")
        BashOperator(task_id="flaky", bash_command="echo try {{ ti.try_number }}; test {{ ti.try_number }} -ge 2",
                     retries=1, retry_delay=0)
"""


def _rendered(db: Database) -> dict[str, tuple[int, dict[str, str]]]:
    with db.session() as session:
        rows = session.execute(
            select(
                TaskInstance.task_id, RenderedTaskInstanceFields.try_number, RenderedTaskInstanceFields.rendered_fields
            ).join(TaskInstance, TaskInstance.id == RenderedTaskInstanceFields.task_instance_id)
        )
        return {task_id: (try_number, fields) for task_id, try_number, fields in rows}


def test_a_try_records_its_rendered_fields_masked(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    with db.session() as session:
        set_variable(session, Encryptor.from_settings(settings), "api_token", TOKEN)
    write_dag(settings, "rendered.py", DAG_FILE)
    run_id = parse_and_trigger(settings, db, "rendered")
    run_scheduler_until_done(settings, db)
    assert ti_states(db) == {"greet": "success", "py": "success", "broken": "failed", "flaky": "success"}
    rendered = _rendered(db)
    assert set(rendered) == {"greet", "py", "flaky"}  # a template that does not render records nothing
    assert rendered["flaky"] == (2, {"bash_command": "echo try 2; test 2 -ge 2", "env": "None", "cwd": "None"})
    try_number, greet = rendered["greet"]
    assert try_number == 1
    assert greet["bash_command"] == f"echo hi ann in {run_id} t=***"  # the secret the task fetched is masked
    assert json.loads(greet["env"]) == {"WHERE": "rendered"}
    assert TOKEN not in json.dumps(rendered)
    whole = json.dumps({"long": "x" * 5000, "n": "3"}, indent=2, sort_keys=True)
    assert rendered["py"][1]["op_kwargs"] == (
        f"{whole[:MAX_RENDERED_FIELD_CHARS]}\n… (cut: {len(whole)} characters, the first {MAX_RENDERED_FIELD_CHARS} recorded)"
    )


def test_rendered_field_text() -> None:
    assert rendered_field_text("a {b}") == "a {b}"
    assert rendered_field_text(None) == "None"
    assert rendered_field_text({"b": 1, "a": [1, 2]}) == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'
    assert rendered_field_text({"at": object}) == '{\n  "at": "<class \'object\'>"\n}'  # str() of what JSON lacks
    assert rendered_field_text("x" * 10, 4) == "xxxx\n… (cut: 10 characters, the first 4 recorded)"
