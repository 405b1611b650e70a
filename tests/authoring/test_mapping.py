"""Authoring dynamic task mapping: partial/expand/expand_kwargs, map/zip, mapped task groups, Airflow's
validation messages, what a mapped task serializes, and how each map index's arguments resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from headrace import DAG, task, task_group
from headrace.authoring.task import MappedOperator
from headrace.dagfiles.serialization import SerializedDag, serialize_dag
from headrace.operators import BashOperator, PythonOperator

START = datetime(2026, 1, 1)


@task
def numbers() -> list[int]:
    return [1, 2, 3]


@task
def add(x: int, y: int) -> int:
    return x + y


class FakeTI:
    """Answers xcom_pull from a dict ``{(task_id, map_index or None): value}``."""

    def __init__(self, values: dict[tuple[str, int | None], Any]) -> None:
        self.values = values
        self.pulls: list[tuple[str, int | None]] = []

    def xcom_pull(self, task_ids: str, key: str = "return_value", map_indexes: int | None = None) -> Any:
        self.pulls.append((task_ids, map_indexes))
        return self.values.get((task_ids, map_indexes))


def test_partial_expand_builds_a_mapped_task_downstream_of_its_input() -> None:
    with DAG("m", start_date=START, schedule=None, default_args={"retries": 2}) as dag:
        mapped = add.partial(y=10).expand(x=numbers())
    op = mapped.operator
    assert isinstance(op, MappedOperator) and op.is_mapped and op.retries == 2
    assert op.upstream_task_ids == {"numbers"} and op.operator_name == "@task"
    stored = serialize_dag(dag)["tasks"]["add"]
    assert stored["expand_input"] == {"type": "dict_of_lists", "lengths": {"x": {"xcom": "numbers"}}}
    assert SerializedDag.from_dict(serialize_dag(dag)).tasks["add"].is_mapped
    assert "expand_input" not in serialize_dag(dag)["tasks"]["numbers"]  # unmapped tasks serialize as before


def test_classic_operators_map_over_literals_and_keep_their_own_arguments() -> None:
    with DAG("m", start_date=START, schedule=None, default_args={"bash_command": "unused"}) as dag:
        echo = BashOperator.partial(task_id="echo", retries=1, max_active_tis_per_dagrun=2).expand(
            bash_command=["echo a", "echo b"], env=[{"A": "1"}]
        )
    assert (echo.retries, echo.max_active_tis_per_dagrun, echo.operator_name) == (1, 2, "BashOperator")
    stored = serialize_dag(dag)["tasks"]["echo"]
    assert stored["expand_input"]["lengths"] == {"bash_command": {"literal": 2}, "env": {"literal": 1}}
    assert stored["max_active_tis_per_dagrun"] == 2
    real = echo.unmap({"bash_command": "echo b", "env": {"A": "1"}})
    assert isinstance(real, BashOperator) and real.bash_command == "echo b" and real.task_id == "echo"
    assert real.dag is dag and real.retries == 1


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: add.partial(y=1).expand(y=[1]), TypeError, "mapping already partial argument: y"),
        (lambda: add.expand(z=[1]), TypeError, "add.expand() got an unexpected keyword argument 'z'"),
        (lambda: add.partial(q=1), TypeError, "add.partial() got an unexpected keyword argument 'q'"),
        (lambda: add.expand(ds=[1]), ValueError, "cannot call expand() on task context variable 'ds'"),
        (lambda: add.expand(), TypeError, "no arguments to expand against"),
        (lambda: add.expand(x=5), ValueError, "add.expand() got an unexpected type 'int' for keyword argument x"),
        (lambda: add.expand_kwargs(5), TypeError, "expected XComArg or list[dict], not int"),
        (lambda: add.expand_kwargs([1]), TypeError, "expected XComArg or list[dict], not list[int]"),
        (
            lambda: BashOperator.partial(task_id="b").expand(task_id=["x"]),
            TypeError,
            "unmappable or already specified argument: task_id",
        ),
        (
            lambda: BashOperator.partial(task_id="b", bash_command="x").expand(bash_command=["y"]),
            TypeError,
            "unmappable or already specified argument: bash_command",
        ),
        (
            lambda: BashOperator.partial(task_id="b").expand(nope=["y"]),
            TypeError,
            "BashOperator.expand() got an unexpected keyword argument 'nope'",
        ),
        (
            lambda: BashOperator.partial(bash_command="x"),
            TypeError,
            "BashOperator.partial() missing required keyword argument 'task_id'",
        ),
        (
            lambda: add.expand(x=numbers.override(task_id="n2")()["other"]),
            ValueError,
            "cannot map over XCom with custom key 'other' from task 'n2'",
        ),
    ],
)
def test_bad_mapping_is_refused_naming_the_argument(build: Any, error: type[Exception], message: str) -> None:
    with DAG("m", start_date=START, schedule=None), pytest.raises(error) as caught:
        build()
    assert str(caught.value) == message


def test_each_map_index_resolves_its_arguments() -> None:
    with DAG("m", start_date=START, schedule=None):
        n = numbers()
        product = add.expand(x=[1, 2], y=[10, 20, 30])
        zipped = add.override(task_id="zipped").expand_kwargs([{"x": 1, "y": 2}, {"x": 3, "y": 4}])
        over_dict = add.override(task_id="over_dict").partial(y=0).expand(x={"a": 1, "b": 2})
        from_zip = add.override(task_id="from_zip").expand(x=n.zip(n.map(lambda v: v * 10), fillvalue=None))
    ti = FakeTI({("numbers", None): [1, 2, 3]})

    def args(op: Any, index: int) -> dict[str, Any]:
        assert op.expand_input is not None
        resolved: dict[str, Any] = op.expand_input.resolve({"ti": ti, "map_index": index}, index)
        return resolved

    # the cross product: the last argument varies fastest (Airflow's order)
    assert [args(product.operator, i) for i in range(6)] == [
        {"x": 1, "y": 10},
        {"x": 1, "y": 20},
        {"x": 1, "y": 30},
        {"x": 2, "y": 10},
        {"x": 2, "y": 20},
        {"x": 2, "y": 30},
    ]
    assert args(zipped.operator, 1) == {"x": 3, "y": 4}
    assert args(over_dict.operator, 1) == {"x": ("b", 2)}  # a dict maps over its (key, value) pairs
    assert args(from_zip.operator, 2) == {"x": (3, 30)}
    with pytest.raises(IndexError):
        args(product.operator, 6)


def test_a_mapped_tasks_value_downstream_is_the_list_and_inside_its_group_the_same_index() -> None:
    with DAG("m", start_date=START, schedule=None) as dag:

        @task_group
        def per_item(v: Any) -> Any:
            @task
            def inc(v: int) -> int:
                return v + 1

            @task
            def twice(v: int) -> int:
                return v * 2

            return twice(inc(v))

        out = per_item.expand(v=numbers())
        add.override(task_id="total")(out, 0)
    inc, twice = dag.get_task("per_item.inc"), dag.get_task("per_item.twice")
    assert inc.is_mapped and twice.is_mapped and inc.mapped_group() is twice.mapped_group()
    assert inc.upstream_task_ids == {"numbers"}
    stored = serialize_dag(dag)
    assert stored["tasks"]["per_item.twice"]["mapped_group"] == "per_item"
    assert stored["task_groups"]["per_item"]["is_mapped"] is True
    ti = FakeTI({("per_item.inc", 1): 3, ("per_item.inc", None): [2, 3, 4]})
    ref = twice.op_args[0]  # type: ignore[attr-defined]
    assert ref.resolve({"ti": ti, "task": twice, "map_index": 1}) == 3  # same group: the same index
    assert ref.resolve({"ti": ti, "task": dag.get_task("total"), "map_index": -1}) == [2, 3, 4]
    assert dag.get_task("total").upstream_task_ids == {"per_item.twice"}
    mapped_arg = inc.op_args[0]  # type: ignore[attr-defined]
    assert mapped_arg.resolve({"ti": FakeTI({("numbers", None): [5, 6, 7]}), "map_index": 2}) == 7


def test_nested_mapping_is_refused_as_airflow_does() -> None:
    with DAG("m", start_date=START, schedule=None):

        @task_group
        def grp(v: Any) -> None:
            add.expand(x=[1], y=[v])

        with pytest.raises(NotImplementedError, match="operator expansion in an expanded task group"):
            grp.expand(v=[1, 2])


def test_python_operator_maps_over_op_args() -> None:
    with DAG("m", start_date=START, schedule=None):
        op = PythonOperator.partial(task_id="p", python_callable=lambda v: v).expand(op_args=[[1], [2]])
    assert isinstance(op.unmap({"op_args": [2]}), PythonOperator)


def test_mapped_setup_and_teardown_are_kept_and_serialized() -> None:
    """Airflow allows mapped setups and teardowns (``@setup`` / ``@teardown`` with ``expand``, ``as_setup()``,
    ``as_teardown()``); each index's operator keeps the role."""
    from headrace import setup, teardown

    @setup
    def make(n: int) -> int:
        return n

    @teardown
    def drop(n: int) -> None:
        return None

    with DAG("mapped_roles", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        made = make.expand(n=[1, 2])
        dropped = drop.expand(n=[1, 2])
        made >> dropped
        classic = BashOperator.partial(task_id="classic").expand(bash_command=["true"]).as_teardown(setups=made)
    tasks = SerializedDag.from_dict(serialize_dag(dag)).tasks
    assert (tasks["make"].is_setup, tasks["make"].is_teardown) == (True, False)
    assert (tasks["drop"].is_teardown, tasks["drop"].trigger_rule) == (True, "all_done_setup_success")
    assert tasks["classic"].is_teardown and "make" in tasks["classic"].upstream_task_ids
    unmapped = classic.unmap({"bash_command": "true"})
    assert unmapped.is_teardown and not isinstance(unmapped, MappedOperator)


def test_mapped_over_ids_are_kept_until_a_task_is_added() -> None:
    with DAG("m", start_date=START, schedule=None) as dag:
        add.partial(y=10).expand(x=numbers())
        assert dag.mapped_over_ids() == frozenset({"numbers"})
        assert dag.mapped_over_ids() is dag.mapped_over_ids()  # worked out once
        BashOperator.partial(task_id="echo").expand(
            bash_command=PythonOperator(task_id="cmds", python_callable=list).output
        )
    assert dag.mapped_over_ids() == frozenset({"numbers", "cmds"})
