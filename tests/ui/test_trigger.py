"""The trigger form's fields (``headrace.ui.trigger``), built from the DAG's ``params``."""

from __future__ import annotations

from headrace.ui.trigger import param_field


def test_param_fields_are_typed_by_default() -> None:
    assert param_field("flag", True)["kind"] == "bool"
    assert param_field("n", 3)["kind"] == "int"
    assert param_field("x", 1.5)["kind"] == "float"
    assert param_field("s", "hi") == {"name": "s", "kind": "str", "value": "hi"}
    assert param_field("l", [1, 2]) == {"name": "l", "kind": "json", "value": "[\n  1,\n  2\n]"}
