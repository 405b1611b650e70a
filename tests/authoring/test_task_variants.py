"""@task.bash, @task.virtualenv / external_python and @task.run_if / skip_if as authoring objects
(their runs through the scheduler: tests/integration/test_python_interpreters.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from headrace import task
from headrace.authoring.dag import DAG
from headrace.authoring.decorators import DecoratedBashOperator, DecoratedVirtualenvOperator
from headrace.exceptions import DagDefinitionError, SkipTask
from headrace.operators import EmptyOperator, PythonVirtualenvOperator

from .conftest import RUN


def double(x):  # type: ignore[no-untyped-def]
    return x * 2


def test_bash_decorator_runs_the_returned_command(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:

        @task.bash(skip_on_exit_code=7)
        def echo(word: str) -> str:
            return f"echo {word} {{{{ ds }}}}"

        @task.bash
        def skip() -> str:
            return "exit 7"

        @task.bash
        def nothing() -> str:
            return "  "

        echo("hi")
        skip.override(skip_on_exit_code=7)()
        nothing()
    assert isinstance(dag.get_task("echo"), DecoratedBashOperator)
    assert dag.get_task("echo").operator_name == "@task.bash"
    r = runner(dag)
    assert r.run_task("echo") == f"hi {RUN.logical_date:%Y-%m-%d}"
    with pytest.raises(SkipTask):
        r.run_task("skip")
    with pytest.raises(TypeError, match="must be a non-empty string"):
        r.run_task("nothing")


def test_run_if_and_skip_if_hooks(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:

        @task.skip_if(lambda context: context["ds"] == "2024-01-02")
        @task.run_if(lambda context: (True, None))
        @task
        def f() -> int:
            return 1

        f()
        classic = task.run_if(lambda context: (False, "custom message"))(EmptyOperator(task_id="classic"))
    r = runner(dag)
    hook = dag.get_task("f").pre_execute_hook
    assert hook is not None
    with pytest.raises(SkipTask, match="Task was skipped due to condition."):
        hook(r.context(dag.get_task("f")))
    assert classic.pre_execute_hook is not None
    with pytest.raises(SkipTask, match="custom message"):
        classic.pre_execute_hook(r.context(classic))


def test_run_if_needs_a_task() -> None:
    with pytest.raises(TypeError, match="run_if can only be used with task. decorate with @task before @run_if"):
        task.run_if(lambda context: True)(double)
    with pytest.raises(DagDefinitionError, match="needs a callable condition"):
        task.skip_if(True)  # type: ignore[arg-type]


def test_virtualenv_operators_keep_the_function_source() -> None:
    with DAG("d") as dag:

        @task.virtualenv(requirements=["x==1"], python_version="3.11")
        def in_venv(v: int) -> int:
            return v + 1

        in_venv(1)
        classic = PythonVirtualenvOperator(task_id="classic", python_callable=double, requirements="a\nb")
        with pytest.raises(DagDefinitionError, match="task 'lam': the python_callable must be a function"):
            PythonVirtualenvOperator(task_id="lam", python_callable=lambda: 1)
        with pytest.raises(DagDefinitionError, match="task 'ser': unsupported serializer 'json'"):
            PythonVirtualenvOperator(task_id="ser", python_callable=double, serializer="json")
        with pytest.raises(DagDefinitionError, match="task 'ctx': use_airflow_context=True is not supported"):
            PythonVirtualenvOperator(task_id="ctx", python_callable=double, use_airflow_context=True)
    decorated = dag.get_task("in_venv")
    assert isinstance(decorated, DecoratedVirtualenvOperator)
    assert decorated.source.startswith("def in_venv(v: int) -> int:")  # the decorator lines are gone
    assert decorated.spec().requirements == ("x==1",) and decorated.spec().python_version == "3.11"
    assert classic.spec().requirements == ("a", "b")


def test_branch_virtualenv_follows_the_returned_task(runner: Any) -> None:
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:

        @task.branch_virtualenv(system_site_packages=False)
        def choose(ds=None):  # type: ignore[no-untyped-def]
            return "left" if ds else "right"

        choose() >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]
    r = runner(dag)
    assert r.run_task("choose") == "left"
    assert r.skipped == {"right"}
