"""Setup/teardown authoring and the graph rules (Airflow's): wiring, leaves, clearing, relevant setups."""

from __future__ import annotations

import pytest

from headrace import DAG, setup, task, teardown
from headrace.authoring.setup_teardown import clear_closure, effective_leaves, indirect_setups, relevant_setups
from headrace.exceptions import DagDefinitionError
from headrace.operators import EmptyOperator


def _ids(dag: DAG, tid: str) -> tuple[list[str], list[str]]:
    t = dag.get_task(tid)
    return sorted(t.upstream_task_ids), sorted(t.downstream_task_ids)


def test_with_setup_teardown_wires_roots_and_leaves_of_the_block() -> None:
    with DAG("cm") as dag:
        s = EmptyOperator(task_id="s").as_setup()
        t = EmptyOperator(task_id="t").as_teardown(setups=s)
        with s >> t:
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            c = EmptyOperator(task_id="c")
            a >> [b, c]
        outside = EmptyOperator(task_id="outside")
    assert _ids(dag, "a") == (["s"], ["b", "c"])
    assert _ids(dag, "t") == (["b", "c", "s"], [])
    assert t.trigger_rule == "all_done_setup_success" and not outside.upstream_task_ids


def test_decorators_mark_the_tasks_and_teardown_takes_on_failure_fail_dagrun() -> None:
    with DAG("tf") as dag:

        @setup
        def make() -> int:
            return 1

        @teardown(on_failure_fail_dagrun=True)
        def drop(x: int) -> None: ...

        @task
        def work(x: int) -> None: ...

        m = make()
        with drop(m):
            work(m)
    assert dag.get_task("make").is_setup and dag.get_task("drop").is_teardown
    assert dag.get_task("drop").on_failure_fail_dagrun
    assert _ids(dag, "work") == (["make"], ["drop"])


def test_on_failure_fail_dagrun_only_on_a_teardown_and_with_only_on_setup_or_teardown() -> None:
    with DAG("bad"):
        op = EmptyOperator(task_id="x")
        with pytest.raises(DagDefinitionError, match="'x': it is not a teardown"):
            op.on_failure_fail_dagrun = True
        with pytest.raises(DagDefinitionError, match="only setup/teardown tasks"), op:
            pass


def _graph() -> DAG:
    #   s1 >> w1 >> w2 >> t1   (t1 tears down s1);  s2 >> w2 (s2 has no teardown);  w2 >> other
    with DAG("g") as dag:
        s1 = EmptyOperator(task_id="s1").as_setup()
        s2 = EmptyOperator(task_id="s2").as_setup()
        t1 = EmptyOperator(task_id="t1").as_teardown(setups=s1)
        w1, w2, other = (EmptyOperator(task_id=i) for i in ("w1", "w2", "other"))
        s1 >> w1 >> w2 >> t1
        s2 >> w2 >> other
    return dag


def test_relevant_setups_and_indirect_ones() -> None:
    tasks = _graph().task_dict
    assert relevant_setups(tasks, "w2") == {"s1", "s2"}
    assert relevant_setups(tasks, "other") == {"s2"}  # s1's teardown is not downstream of other
    assert relevant_setups(tasks, "t1") == set()
    assert indirect_setups(tasks) == {"w2": {"s1"}, "other": {"s2"}}


def test_clearing_adds_setups_and_their_teardowns() -> None:
    tasks = _graph().task_dict
    assert clear_closure(tasks, ["w2"], include_upstream=False, include_downstream=False) == {"w2", "s1", "t1", "s2"}
    assert clear_closure(tasks, ["s1"], include_upstream=False, include_downstream=False) == {"s1", "t1"}
    assert clear_closure(tasks, ["other"], include_upstream=False, include_downstream=False) == {"other", "s2"}


def test_teardowns_are_not_leaves_unless_they_fail_the_run() -> None:
    tasks = _graph().task_dict
    assert effective_leaves(tasks) == ["other"]  # w2 is followed by other too
    tasks["t1"].on_failure_fail_dagrun = True
    assert effective_leaves(tasks) == ["other", "t1"]


def test_a_task_right_after_a_setup_must_use_all_success() -> None:
    with DAG("rule") as dag:
        s = EmptyOperator(task_id="s").as_setup()
        s >> EmptyOperator(task_id="w", trigger_rule="all_done")
    with pytest.raises(DagDefinitionError, match="'w' follows setup task 's' with trigger_rule 'all_done'"):
        dag.validate()


def test_a_group_s_teardown_is_not_what_follows_the_group() -> None:
    from headrace import TaskGroup

    with DAG("grp") as dag:
        with TaskGroup("g") as g:
            s = EmptyOperator(task_id="s").as_setup()
            w = EmptyOperator(task_id="w")
            t = EmptyOperator(task_id="t").as_teardown(setups=s)
            s >> w >> t
        g >> EmptyOperator(task_id="after")
    assert _ids(dag, "after") == (["g.w"], [])  # the work before the teardown, as Airflow connects it
