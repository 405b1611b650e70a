"""TriggerDagRunOperator's arguments (the run itself is made through the scheduler: tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from headrace.authoring.dag import DAG
from headrace.authoring.trigger_dagrun import TriggerDagRunError
from headrace.exceptions import DagDefinitionError
from headrace.operators import TriggerDagRunOperator


def test_defaults_are_airflows() -> None:
    with DAG("d"):
        op = TriggerDagRunOperator(task_id="t", trigger_dag_id="other")
        no_failed = TriggerDagRunOperator(task_id="u", trigger_dag_id="other", failed_states=[], allowed_states=[])
    assert (op.allowed_states, op.failed_states, op.poke_interval) == (["success"], ["failed"], 60.0)
    assert (op.wait_for_completion, op.reset_dag_run, op.skip_when_already_exists) == (False, False, False)
    assert (no_failed.allowed_states, no_failed.failed_states) == (["success"], [])
    assert "conf" in op.template_fields and "trigger_run_id" in op.template_fields


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allowed_states": ["done"]}, r"task 't': allowed_states has \['done'\], which are not DAG run states"),
        ({"logical_date": 5}, "task 't': logical_date must be a str, a datetime or None, got int"),
        ({"poke_interval": -1}, "task 't': poke_interval must be seconds"),
        ({"trigger_dag_id": ""}, "task 't': trigger_dag_id must be a non-empty string"),
    ],
)
def test_bad_arguments_name_the_task(kwargs: dict[str, Any], message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message):
        TriggerDagRunOperator(task_id="t", **{"trigger_dag_id": "other", **kwargs})


def test_outside_a_supervised_try_it_says_so(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        TriggerDagRunOperator(task_id="t", trigger_dag_id="other", conf={"when": "{{ ds }}"})
    with pytest.raises(TriggerDagRunError, match="only when run by a supervisor"):
        runner(dag).run_task("t")


def test_conf_must_be_json(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        TriggerDagRunOperator(task_id="t", trigger_dag_id="other", conf={"x": object()})
    with pytest.raises(ValueError, match="conf parameter should be JSON Serializable"):
        runner(dag).run_task("t")
