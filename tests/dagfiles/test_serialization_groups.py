"""Task groups and edge labels in the serialized DAG: stored so the UI shows them without user code."""

from __future__ import annotations

import json

from headrace.authoring.dag import DAG
from headrace.authoring.edges import Label
from headrace.authoring.operators import EmptyOperator
from headrace.authoring.task_group import TaskGroup
from headrace.dagfiles.serialization import SerializedDag, SerializedTaskGroup, dag_hash, serialize_dag


def _dag() -> DAG:
    with DAG("grouped") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("outer", tooltip="the outer one", ui_color="#abcdef") as outer:
            a = EmptyOperator(task_id="a")
            with TaskGroup("inner", ui_fgcolor="#fff") as inner:
                EmptyOperator(task_id="b")
            a >> inner
        end = EmptyOperator(task_id="end")
        start >> Label("begin") >> outer >> Label("finish") >> end
    return dag


def test_groups_and_labels_round_trip() -> None:
    data = serialize_dag(_dag())
    assert json.loads(json.dumps(data)) == data
    assert data["task_groups"] == {
        "outer": {
            "children": ["outer.a", "outer.inner"],
            "label": "outer",
            "parent": None,
            "prefix_group_id": True,
            "tooltip": "the outer one",
            "ui_color": "#abcdef",
            "ui_fgcolor": "#000",
        },
        "outer.inner": {
            "children": ["outer.inner.b"],
            "label": "inner",
            "parent": "outer",
            "prefix_group_id": True,
            "tooltip": "",
            "ui_color": "CornflowerBlue",
            "ui_fgcolor": "#fff",
        },
    }
    assert data["edge_info"] == {
        "start": {"outer.a": {"label": "begin"}},
        "outer.inner.b": {"end": {"label": "finish"}},
    }
    sdag = SerializedDag.from_dict(data)
    assert sdag.task_groups["outer.inner"] == SerializedTaskGroup(
        group_id="outer.inner", label="inner", parent="outer", children=("outer.inner.b",), ui_fgcolor="#fff"
    )
    assert sdag.task_groups["outer"].tooltip == "the outer one"
    assert sdag.edge_info["start"]["outer.a"] == {"label": "begin"}
    assert sdag.task_ids == ["end", "outer.a", "outer.inner.b", "start"]
    assert sdag.get_task("end").upstream_task_ids == frozenset({"outer.inner.b"})
    assert dag_hash(serialize_dag(_dag())) == sdag.hash  # the same file gives the same version


def test_a_dag_without_groups_or_labels_keeps_its_layout_and_hash() -> None:
    with DAG("plain") as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    data = serialize_dag(dag)
    assert "task_groups" not in data and "edge_info" not in data
    sdag = SerializedDag.from_dict(data)
    assert sdag.task_groups == {} and sdag.edge_info == {}
