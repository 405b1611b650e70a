"""The pools page (``GET /pools``): every pool with its running / queued / open slots.

``static/pools.js`` reads and changes pools through ``/api/v1/pools``: create,
change slots and delete for an operator; a viewer sees the buttons disabled.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headrace.ui.render import page

router = APIRouter(include_in_schema=False)


@router.get("/pools")
def pools_page(request: Request) -> Response:
    """The pools and their slots; create / edit / delete for operators."""
    return page(request, "pools.html", title="Pools", nav="pools")


__all__ = ["router"]
