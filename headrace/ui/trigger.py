"""The trigger form of a DAG (``GET /dags/{dag_id}/trigger``), built from the JSON schemas of the DAG's ``params``.

Each param is one field (:func:`param_field`), chosen from its schema as
Airflow's trigger form does: an ``enum`` is a select (labels from
``values_display``), ``boolean`` a checkbox, ``integer``/``number`` a number
input (with ``minimum``/``maximum``), ``string`` a text input (``format:
date`` a date picker, ``multiline`` a textarea), ``array``/``object`` a JSON
textarea; a param without ``type`` is typed by its default. The ``title``
(else the name) labels the field, the ``description`` is shown under it, and
a param without default is marked required. The schemas come from the
serialized DAG: no user code is imported.

The form (``static/trigger.js``) posts to ``POST /api/v1/dags/{dag_id}/dagRuns``
and opens the grid with the new run selected. The API validates every param;
its refusal (``ParamValidationError`` names the param) is shown beside that
field and beside the button, and no run is created. A value that does not
parse in the browser (JSON, number) is shown the same way without a request.
A viewer sees the form with its submit button disabled (the API would refuse).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headrace.api.auth import get_db
from headrace.authoring.params import Param
from headrace.dagfiles.serialization import params_dict_of
from headrace.ui.queries import current_serialized
from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)

_PLACEHOLDERS = {"date-time": "2026-01-31T06:00:00+00:00", "time": "06:00:00", "email": "name@example.com"}
"""Example values shown in empty inputs of a string param with this ``format``."""
_SCALARS = {"boolean": "bool", "integer": "int", "number": "float", "string": "str", "array": "json", "object": "json"}


@router.get("/dags/{dag_id}/trigger")
def trigger_page(request: Request, dag_id: str) -> Response:
    """A form built from the DAG's ``params`` plus logical date and raw conf JSON; it posts to the REST API."""
    if session_principal(request) is None:
        return login_redirect(request)
    ctx = dag_context(request, dag_id)
    with get_db(request).read_session() as session:
        params = params_dict_of(current_serialized(session, dag_id))
    fields = [param_field(name, param) for name, param in params.items_params()]
    return page(request, "trigger.html", title=f"Trigger {dag_id}", fields=fields, **ctx)


def _types(schema: dict[str, Any]) -> tuple[str | None, bool]:
    """``(the first non-null JSON type, nullable)`` of a schema's ``type`` (a string or a list)."""
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else ([declared] if isinstance(declared, str) else [])
    concrete = [t for t in types if t != "null"]
    return (concrete[0] if concrete else None), "null" in types


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def param_field(name: str, param: Param | Any) -> dict[str, Any]:
    """How the trigger form shows param ``name`` (a ``Param``, or a plain default value).

    Returns ``{"name", "label", "description", "kind", "value", "required",
    "nullable", "options", "min", "max", "placeholder"}``. ``kind``: ``select`` (``options`` is a list of
    ``{"value": <JSON text>, "label", "selected"}``), ``bool`` (checkbox),
    ``int``/``float`` (number), ``str`` (text), ``date`` (date picker),
    ``text`` (textarea), ``json`` (a textarea holding the value as JSON).
    ``value`` is the default as the input shows it ("" without default).
    ``required``: the param has no default (the trigger must give one).
    """
    if not isinstance(param, Param):
        param = Param(param)
    schema = param.schema
    json_type, nullable = _types(schema)
    default = param.value if param.has_value else None
    field: dict[str, Any] = {
        "name": name,
        "label": str(schema.get("title") or name),
        "description": param.description or schema.get("description"),
        "required": not param.has_value,
        "nullable": nullable,
        "options": [],
        "min": schema.get("minimum"),
        "max": schema.get("maximum"),
        "placeholder": _PLACEHOLDERS.get(str(schema.get("format")), ""),
    }
    if "enum" in schema and isinstance(schema["enum"], list):
        shown = schema.get("values_display")
        display: dict[str, Any] = shown if isinstance(shown, dict) else {}
        field["kind"] = "select"
        field["options"] = [
            {
                "value": json.dumps(v),
                "label": str(display.get(str(v), v) if v is not None else display.get("None", "—")),
                "selected": param.has_value and v == default,
            }
            for v in schema["enum"]
        ]
        field["value"] = json.dumps(default)
        return field
    if json_type is not None:
        kind = _SCALARS.get(json_type, "json")
    else:
        kind = _kind_of_value(default) if param.has_value and default is not None else "json"
    if kind == "str" and schema.get("format") == "date":
        kind = "date"
    elif kind == "str" and schema.get("format") == "multiline":
        kind = "text"
    field["kind"] = kind
    if kind == "json":
        field["value"] = json.dumps(default, indent=2) if param.has_value else ""
    elif kind == "bool":
        field["value"] = bool(default)
    else:
        field["value"] = "" if default is None else str(default)
    return field


__all__ = ["param_field", "router"]
