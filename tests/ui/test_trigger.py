"""The trigger form's fields (``headrace.ui.trigger``), built from the DAG's ``params`` and their JSON schemas."""

from __future__ import annotations

from typing import Any

from headrace.authoring.params import Param
from headrace.ui.trigger import param_field


def shown(field: dict[str, Any]) -> tuple[Any, ...]:
    return field["kind"], field["value"], field["required"], field["nullable"]


def test_plain_values_are_typed_by_default() -> None:
    assert shown(param_field("flag", True)) == ("bool", True, False, False)
    assert shown(param_field("n", 3)) == ("int", "3", False, False)
    assert shown(param_field("x", 1.5)) == ("float", "1.5", False, False)
    assert shown(param_field("s", "hi")) == ("str", "hi", False, False)
    assert shown(param_field("l", [1, 2])) == ("json", "[\n  1,\n  2\n]", False, False)
    assert shown(param_field("nothing", None)) == ("json", "null", False, False)
    assert param_field("s", "hi")["label"] == "s" and param_field("s", "hi")["description"] is None


def test_schemas_choose_the_field() -> None:
    count = param_field("count", Param(3, "rows", type="integer", minimum=1, maximum=10, title="How many"))
    assert shown(count) == ("int", "3", False, False)
    assert (count["label"], count["description"], count["min"], count["max"]) == ("How many", "rows", 1, 10)
    assert shown(param_field("ratio", Param(type="number"))) == ("float", "", True, False)
    assert shown(param_field("on", Param(False, type="boolean"))) == ("bool", False, False, False)
    assert shown(param_field("tags", Param(["a"], type="array"))) == ("json", '[\n  "a"\n]', False, False)
    assert shown(param_field("cfg", Param(type="object"))) == ("json", "", True, False)
    assert shown(param_field("note", Param(None, type=["null", "string"]))) == ("str", "", False, True)
    assert shown(param_field("day", Param("2026-01-31", type="string", format="date"))) == (
        "date",
        "2026-01-31",
        False,
        False,
    )
    assert shown(param_field("sql", Param("", type="string", format="multiline"))) == ("text", "", False, False)
    assert param_field("at", Param(type="string", format="date-time"))["placeholder"] == "2026-01-31T06:00:00+00:00"
    assert param_field("n", Param(2))["kind"] == "int"  # no type: typed by the default


def test_an_enum_is_a_select_labelled_by_values_display() -> None:
    env = param_field("env", Param("dev", enum=["dev", "prod", None], values_display={"prod": "Live"}))
    assert env["kind"] == "select" and env["value"] == '"dev"'
    assert env["options"] == [
        {"value": '"dev"', "label": "dev", "selected": True},
        {"value": '"prod"', "label": "Live", "selected": False},
        {"value": "null", "label": "—", "selected": False},
    ]
    assert not any(o["selected"] for o in param_field("e", Param(enum=[1, 2]))["options"])
