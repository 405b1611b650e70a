"""The trigger form of a DAG (``GET /dags/{dag_id}/trigger``), built from the DAG's ``params``.

The form (``static/trigger.js``) posts to ``POST /api/v1/dags/{dag_id}/dagRuns``
and opens the grid with the new run selected. An error (a param that is not
valid JSON, the API's refusal) is shown beside the field and beside the button.
A viewer sees the form with its submit button disabled (the API would refuse).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headrace.api.auth import get_db
from headrace.ui.queries import current_serialized
from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)


@router.get("/dags/{dag_id}/trigger")
def trigger_page(request: Request, dag_id: str) -> Response:
    """A form built from the DAG's ``params`` plus logical date and raw conf JSON; it posts to the REST API."""
    if session_principal(request) is None:
        return login_redirect(request)
    ctx = dag_context(request, dag_id)
    with get_db(request).read_session() as session:
        params = current_serialized(session, dag_id).get("params") or {}
    fields = [param_field(name, value) for name, value in sorted(params.items())]
    return page(request, "trigger.html", title=f"Trigger {dag_id}", fields=fields, **ctx)


def param_field(name: str, default: Any) -> dict[str, Any]:
    """How the trigger form shows param ``name``: ``{"name", "kind", "value"}``.

    ``kind`` is ``bool`` (checkbox), ``int``/``float`` (number), ``str`` (text) or ``json``
    (a textarea holding the default as JSON, for lists, dicts and ``None``).
    """
    if isinstance(default, bool):
        return {"name": name, "kind": "bool", "value": default}
    if isinstance(default, int):
        return {"name": name, "kind": "int", "value": default}
    if isinstance(default, float):
        return {"name": name, "kind": "float", "value": default}
    if isinstance(default, str):
        return {"name": name, "kind": "str", "value": default}
    return {"name": name, "kind": "json", "value": json.dumps(default, indent=2)}


__all__ = ["param_field", "router"]
