"""Task-level ``params=`` as authoring objects: the merge order, the parse-time checks, mapped tasks."""

from __future__ import annotations

import pytest

from headrace import DAG, Param, TaskGroup, dag, task
from headrace.authoring.dag_warnings import dag_warnings
from headrace.exceptions import DagDefinitionError
from headrace.operators import BashOperator, EmptyOperator


def test_merge_order_dag_then_default_args_then_group_then_own() -> None:
    with DAG("merge", params={"a": 1, "b": Param(2, type="integer")}, default_args={"params": {"b": 3, "c": 4}}) as d:
        plain = EmptyOperator(task_id="plain")
        own = EmptyOperator(task_id="own", params={"a": "x"})
        with TaskGroup("g", default_args={"params": {"c": 5}}):
            grouped = EmptyOperator(task_id="grouped", params={"d": 6})
    assert d.params.dump() == {"a": 1, "b": 3, "c": 4} and "params" not in d.default_args
    assert plain.params.dump() == {"a": 1, "b": 3, "c": 4}
    assert own.params.dump() == {"a": "x", "b": 3, "c": 4}
    assert grouped.params.dump() == {"a": 1, "b": 3, "c": 5, "d": 6}
    own.params["a"] = "y"  # a task's ParamsDict is its own copy
    assert d.params["a"] == 1 and plain.params["a"] == 1
    assert dag_warnings(d) == []
    assert d.params.get_param("b").schema == {"type": "integer"}  # default_args' plain 3 kept the schema


def test_a_bad_default_names_the_task_and_the_param() -> None:
    with DAG("bad"), pytest.raises(DagDefinitionError, match=r"task 'load': param 'n': \"x\" is not of type integer"):
        EmptyOperator(task_id="load", params={"n": Param("x", type="integer")})
    with DAG("bad1", params={"n": Param(1, type="integer")}), pytest.raises(DagDefinitionError, match=r"task 'x'"):
        EmptyOperator(task_id="x", params={"n": "one"})  # a plain value keeps the DAG param's schema
    with DAG("bad2"), pytest.raises(DagDefinitionError, match=r"task 'load': params must be a dict, got list"):
        EmptyOperator(task_id="load", params=[1])


def test_decorated_and_mapped_tasks_take_params() -> None:
    @dag(params={"a": 1})
    def decorated() -> None:
        @task(params={"b": 2})
        def f(x: int) -> int:
            return x

        f.expand(x=[1, 2])
        BashOperator.partial(task_id="bm", params={"c": 3}).expand(bash_command=["echo 1", "echo 2"])

    d = decorated()
    assert d.task_dict["f"].params.dump() == {"a": 1, "b": 2}
    mapped = d.task_dict["bm"]
    assert mapped.params.dump() == {"a": 1, "c": 3} and mapped.ignored_arguments == ()
    unmapped = mapped.unmap({"bash_command": "echo 1"})  # type: ignore[attr-defined]
    assert unmapped.params.dump() == {"a": 1, "c": 3}
