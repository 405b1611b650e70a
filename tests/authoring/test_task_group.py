"""``TaskGroup`` and ``@task_group``: prefixed ids, nesting, default_args, dependencies to and from groups."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import headrace
from headrace.authoring.dag import DAG
from headrace.authoring.dag_warnings import UNSUPPORTED_ARGUMENT, UNUSED_DEFAULT_ARG, dag_warnings
from headrace.authoring.decorators import task
from headrace.authoring.operators import EmptyOperator
from headrace.authoring.task import chain
from headrace.authoring.task_group import TaskGroup, task_group
from headrace.authoring.xcom import XComArg
from headrace.exceptions import DagDefinitionError, DuplicateTaskIdError


def _here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_public_import_paths() -> None:
    assert headrace.TaskGroup is TaskGroup and headrace.task_group is task_group
    assert {"TaskGroup", "task_group", "Label"} <= set(headrace.__all__)


def test_tasks_in_nested_groups_get_prefixed_ids() -> None:
    with DAG("d") as dag:
        with TaskGroup("outer") as outer:
            a = EmptyOperator(task_id="a")
            with TaskGroup("inner") as inner:
                b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
    assert (a.task_id, b.task_id, c.task_id) == ("outer.a", "outer.inner.b", "c")
    assert (outer.group_id, inner.group_id, inner.label) == ("outer", "outer.inner", "inner")
    assert inner.parent_group is outer and a.task_group is outer and b.task_group is inner and c.task_group is None
    assert list(outer.children) == ["outer.a", "outer.inner"]
    assert list(dag.task_group_dict) == ["outer", "outer.inner"]
    assert dag.get_task("outer.inner.b") is b


def test_prefix_group_id_false_keeps_the_ids_as_given() -> None:
    with DAG("d") as dag:
        with TaskGroup("plain", prefix_group_id=False):
            EmptyOperator(task_id="a")
            with TaskGroup("inner"):
                EmptyOperator(task_id="b")
    assert dag.task_ids == ["a", "inner.b"]
    assert list(dag.task_group_dict) == ["plain", "inner"]


def test_explicit_parent_group_and_task_group_arguments() -> None:
    with DAG("d") as dag:
        outer = TaskGroup("outer")
        inner = TaskGroup("inner", parent_group=outer)
        t = EmptyOperator(task_id="t", task_group=inner)
    assert t.task_id == "outer.inner.t" and inner.group_id == "outer.inner"
    assert dag.task_group_dict["outer.inner"] is inner and "outer.inner.t" in inner.children


def test_group_default_args_merge_over_the_dags() -> None:
    with DAG("d", default_args={"retries": 1, "pool": "p_dag", "queue": "q_dag"}) as dag:
        with TaskGroup("g", default_args={"retries": 3, "pool": "p_group"}):
            with TaskGroup("h", default_args={"pool": "p_inner"}):
                EmptyOperator(task_id="deep")
            EmptyOperator(task_id="mid", retries=7)
        EmptyOperator(task_id="top")
    got = {t.task_id: (t.retries, t.pool, t.queue) for t in dag.tasks}
    assert got == {
        "g.h.deep": (3, "p_inner", "q_dag"),
        "g.mid": (7, "p_group", "q_dag"),
        "top": (1, "p_dag", "q_dag"),
    }


def test_dependencies_to_and_from_a_group_use_its_roots_and_leaves() -> None:
    with DAG("d") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g") as g:
            a, b, c = (EmptyOperator(task_id=t) for t in ("a", "b", "c"))
            a >> [b, c]
            lone = EmptyOperator(task_id="lone")
        end = EmptyOperator(task_id="end")
        result = start >> g >> end
    assert result is end
    assert g.roots == [a, lone] and g.leaves == [b, c, lone]
    assert start.downstream_task_ids == {"g.a", "g.lone"}
    assert end.upstream_task_ids == {"g.b", "g.c", "g.lone"}
    dag.validate()


def test_lshift_lists_and_group_to_group() -> None:
    with DAG("d"):
        x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        with TaskGroup("one") as one:
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        with TaskGroup("two") as two:
            c = EmptyOperator(task_id="c")
        z = EmptyOperator(task_id="z")
        one >> two
        [x, y] >> one
        z << two
        two << [x]
    assert c.upstream_task_ids == {"one.b", "x"}
    assert x.downstream_task_ids == {"one.a", "two.c"} and y.downstream_task_ids == {"one.a"}
    assert z.upstream_task_ids == {"two.c"}


def test_chain_with_groups() -> None:
    with DAG("d"):
        s = EmptyOperator(task_id="s")
        with TaskGroup("g1") as g1:
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        with TaskGroup("g2") as g2:
            c = EmptyOperator(task_id="c")
        e1, e2 = EmptyOperator(task_id="e1"), EmptyOperator(task_id="e2")
        chain(s, g1, g2, [e1, e2])
    assert s.downstream_task_ids == {"g1.a"}
    assert c.upstream_task_ids == {"g1.b"} and c.downstream_task_ids == {"e1", "e2"}


def test_duplicate_group_id_is_refused_with_file_and_line() -> None:
    with DAG("d"):
        TaskGroup("g")
        with pytest.raises(DuplicateTaskIdError) as info:
            line = _here() + 1
            TaskGroup("g")
    assert info.value.fileloc == __file__ and info.value.lineno == line
    assert f"{__file__}:{line}" in str(info.value) and "'g' has already been added" in str(info.value)


def test_group_id_may_not_be_a_task_id_and_back() -> None:
    with DAG("d"):
        EmptyOperator(task_id="same")
        with pytest.raises(DuplicateTaskIdError, match="as a task_id"):
            TaskGroup("same")
        TaskGroup("grp")
        with pytest.raises(DuplicateTaskIdError, match="id of a task group"):
            EmptyOperator(task_id="grp")


def test_bad_group_arguments_are_clear_errors() -> None:
    with pytest.raises(DagDefinitionError, match="inside a DAG"):
        TaskGroup("orphan")
    with DAG("d"):
        with pytest.raises(DagDefinitionError, match="group_id 'a b' may contain only"):
            TaskGroup("a b")
        with pytest.raises(DagDefinitionError, match="default_args must be a dict"):
            TaskGroup("g", default_args=[1])  # type: ignore[arg-type]
        empty = TaskGroup("empty")
        t = EmptyOperator(task_id="t")
        with pytest.raises(DagDefinitionError, match="task group 'empty' has no tasks"):
            t >> empty


def test_task_group_decorator_returns_the_group_or_the_functions_result() -> None:
    @task
    def produce() -> int:
        return 1

    @task
    def consume(value: int) -> int:
        return value

    @task_group
    def no_result() -> None:
        """Two steps."""
        produce() >> consume(2)

    @task_group(tooltip="given", default_args={"retries": 2})
    def with_result(value: Any) -> XComArg:
        return consume(value)

    with DAG("d") as dag:
        start = EmptyOperator(task_id="start")
        group = no_result()
        out = with_result(produce())
        last = consume(out)
    assert isinstance(group, TaskGroup) and group.group_id == "no_result" and group.tooltip == "Two steps."
    start >> group
    assert start.downstream_task_ids == {"no_result.produce"}
    assert isinstance(out, XComArg) and out.operator.task_id == "with_result.consume"
    assert dag.get_task("with_result.consume").upstream_task_ids == {"produce"}
    assert dag.get_task("with_result.consume").retries == 2
    assert last.operator.upstream_task_ids == {"with_result.consume"}
    assert dag.task_group_dict["with_result"].tooltip == "given"


def test_task_group_called_twice_gets_a_suffix_and_override_renames() -> None:
    @task_group
    def step() -> None:
        EmptyOperator(task_id="work")

    with DAG("d") as dag:
        first, second = step(), step()
        third = step.override(group_id="renamed")()
    assert [g.group_id for g in (first, second, third)] == ["step", "step__1", "renamed"]  # type: ignore[union-attr]
    assert dag.task_ids == ["step.work", "step__1.work", "renamed.work"]


def test_task_group_decorator_checks_arguments() -> None:
    with pytest.raises(DagDefinitionError, match="does not take: colour"):

        @task_group(colour="red")
        def bad() -> None: ...

    @task_group("named")
    def takes_one(x: int) -> None:
        EmptyOperator(task_id="t")

    with DAG("d"), pytest.raises(TypeError, match="takes_one"):
        takes_one(1, 2)  # type: ignore[call-arg]
    with DAG("d2") as d2:
        takes_one(1)
    assert d2.task_ids == ["named.t"]


def test_decorated_tasks_in_a_group_get_unique_prefixed_ids() -> None:
    @task
    def work() -> None: ...

    with DAG("d") as dag:
        work()
        with TaskGroup("g"):
            work()
            work()
    assert dag.task_ids == ["work", "g.work", "g.work__1"]


def test_group_default_args_no_task_accepts_are_dag_warnings() -> None:
    with DAG("d") as dag:
        with TaskGroup("g", default_args={"retries": 2, "pager": "#ops", "email_on_failure": True}):
            EmptyOperator(task_id="t")
    found = [(w.kind, w.message) for w in dag_warnings(dag)]
    assert found == [
        (
            UNSUPPORTED_ARGUMENT,
            "task group 'g': default_args key 'email_on_failure' is accepted by no task of the group; it is ignored",
        ),
        (
            UNUSED_DEFAULT_ARG,
            "task group 'g': default_args key 'pager' is accepted by no task of the group; it is ignored",
        ),
    ]
