"""``Label``: edge labels between tasks, groups, XComArgs and lists, stored in ``DAG.edge_info``."""

from __future__ import annotations

import pytest

import headrace
from headrace.authoring.dag import DAG
from headrace.authoring.decorators import task
from headrace.authoring.edges import Label
from headrace.authoring.operators import EmptyOperator
from headrace.authoring.task import chain
from headrace.authoring.task_group import TaskGroup
from headrace.exceptions import DagDefinitionError


def test_label_between_two_tasks() -> None:
    assert headrace.Label is Label
    with DAG("d") as dag:
        a, b = EmptyOperator(task_id="a"), EmptyOperator(task_id="b")
        result = a >> Label("yes") >> b
    assert result is b and b.upstream_task_ids == {"a"}
    assert dag.edge_info == {("a", "b"): {"label": "yes"}}
    assert dag.get_edge_info("a", "b") == {"label": "yes"} and dag.get_edge_info("b", "a") == {}


def test_label_with_lists_and_lshift() -> None:
    with DAG("d") as dag:
        a, b, c, d = (EmptyOperator(task_id=t) for t in "abcd")
        [a, b] >> Label("both") >> c
        d << Label("back") << c
        a >> Label("fan") >> [d]
    assert c.upstream_task_ids == {"a", "b"} and d.upstream_task_ids == {"a", "c"}
    assert dag.edge_info == {
        ("a", "c"): {"label": "both"},
        ("b", "c"): {"label": "both"},
        ("c", "d"): {"label": "back"},
        ("a", "d"): {"label": "fan"},
    }


def test_set_downstream_and_set_upstream_with_an_edge_modifier() -> None:
    with DAG("d") as dag:
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        a.set_downstream(b, edge_modifier=Label("down"))
        c.set_upstream(b, edge_modifier=Label("up"))
    assert dag.edge_info == {("a", "b"): {"label": "down"}, ("b", "c"): {"label": "up"}}


def test_label_to_and_from_groups_and_xcomargs() -> None:
    @task
    def make() -> int:
        return 1

    with DAG("d") as dag:
        ref = make()
        with TaskGroup("g") as g:
            x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        end = EmptyOperator(task_id="end")
        ref >> Label("into") >> g
        g >> Label("out") >> end
    assert x.upstream_task_ids == {"make"} and y.upstream_task_ids == {"make"}
    assert dag.edge_info == {
        ("make", "g.x"): {"label": "into"},
        ("make", "g.y"): {"label": "into"},
        ("g.x", "end"): {"label": "out"},
        ("g.y", "end"): {"label": "out"},
    }


def test_chain_with_labels() -> None:
    with DAG("d") as dag:
        s, a, b, e = (EmptyOperator(task_id=t) for t in ("s", "a", "b", "e"))
        chain(s, [Label("left"), Label("right")], [a, b], Label("done"), e)
    assert s.downstream_task_ids == {"a", "b"} and e.upstream_task_ids == {"a", "b"}
    assert dag.edge_info == {
        ("s", "a"): {"label": "left"},
        ("s", "b"): {"label": "right"},
        ("a", "e"): {"label": "done"},
        ("b", "e"): {"label": "done"},
    }


def test_bad_labels_are_clear_errors() -> None:
    with pytest.raises(DagDefinitionError, match="non-empty string"):
        Label("  ")
    with DAG("d"):
        b = EmptyOperator(task_id="b")
        with pytest.raises(DagDefinitionError, match="nothing upstream"):
            Label("x") >> b
        with pytest.raises(DagDefinitionError, match="nothing downstream"):
            Label("x") << b
