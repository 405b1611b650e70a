"""``get_current_context()`` (Airflow's): the running task's context from code it calls, through real tries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headrace import get_current_context
from headrace.dagfiles.loader import load_dags
from headrace.exceptions import DagDefinitionError
from headrace.testing import run_dag_inline

DAG_FILE = """
from headrace import DAG, get_current_context, task
from headrace.operators import PythonOperator


def deep_helper():
    context = get_current_context()  # not handed the context: found through the running task
    return f"{context['ti'].task_id} of {context['dag_run'].run_id if 'dag_run' in context else context['run_id']}"


@task
def taskflow() -> str:
    return deep_helper()


def classic():
    print("classic saw", deep_helper())


with DAG("current_context_demo", schedule=None):
    PythonOperator(task_id="classic", python_callable=classic)
    taskflow()
"""


def test_code_a_task_calls_gets_the_running_tasks_context(tmp_path: Path) -> None:
    path = tmp_path / "current_context_demo.py"
    path.write_text(textwrap.dedent(DAG_FILE))
    [dag] = load_dags(path)
    result = run_dag_inline(dag)
    assert result.task_states == {"classic": "success", "taskflow": "success"}
    assert f"classic saw classic of {result.run_id}" in Path(result.log_paths["classic"][0]).read_text()


def test_outside_a_task_it_says_so() -> None:
    with pytest.raises(DagDefinitionError, match="outside a running task"):
        get_current_context()
