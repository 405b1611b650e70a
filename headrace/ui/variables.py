"""The variables page (``GET /variables``): variables tasks read with ``Variable.get``.

``static/variables.js`` lists, creates, edits and deletes them through ``/api/v1/variables``. Values of
sensitive keys (password, token, secret, …) are ``***`` in the list, and for viewers everywhere; an
operator editing one gets its value from ``GET /api/v1/variables/{key}``. A viewer sees the buttons
disabled; the API refuses them anyway (403).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headrace.ui.render import page

router = APIRouter(include_in_schema=False)


@router.get("/variables")
def variables_page(request: Request) -> Response:
    """The variables, secrets masked; create / edit / delete for operators."""
    return page(request, "variables.html", title="Variables", nav="variables")


__all__ = ["router"]
