"""The connections page (``GET /connections``): how tasks reach outside systems (``Connection.get``).

``static/connections.js`` lists, creates, edits and deletes them through ``/api/v1/connections``. The
password is never sent to the browser (``***`` when set; left empty while editing, it stays as it is), and
sensitive ``extra`` fields are ``***`` (an edit that leaves ``extra`` untouched does not send it back). A
viewer sees the buttons disabled; the API refuses them anyway (403).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headrace.ui.render import page

router = APIRouter(include_in_schema=False)


@router.get("/connections")
def connections_page(request: Request) -> Response:
    """The connections, secrets masked; create / edit / delete for operators."""
    return page(request, "connections.html", title="Connections", nav="connections")


__all__ = ["router"]
