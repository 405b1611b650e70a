"""The one topological order of task ids (headrace.authoring.graph), used by DAG, scheduler and UI."""

from __future__ import annotations

import pytest

from headrace.authoring.graph import find_cycle, topological_order
from headrace.exceptions import DagCycleError


def test_ties_follow_the_mapping_order() -> None:
    downstream = {"b": {"d"}, "a": {"d", "c"}, "c": set(), "d": set()}
    assert topological_order(downstream) == ["b", "a", "c", "d"]
    assert topological_order(dict(sorted(downstream.items()))) == ["a", "b", "c", "d"]


def test_dangling_ids_are_ignored() -> None:
    assert topological_order({"a": {"gone", "b"}, "b": set()}) == ["a", "b"]


def test_a_cycle_is_named_with_the_dag_and_its_file() -> None:
    downstream = {"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert find_cycle(downstream) == ["a", "b", "c", "a"]
    with pytest.raises(DagCycleError) as info:
        topological_order(downstream, dag_id="cyc", fileloc="/dags/cyc.py", lineno=3)
    assert str(info.value) == "/dags/cyc.py:3: DAG 'cyc' has a cycle a → b → c → a"
