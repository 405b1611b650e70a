"""``GET /favicon.ico``: the site icon (no login), so a browser's first request for it is no 404.

``static/favicon.ico`` (16 and 32 px PNGs in an ICO) and ``static/favicon.svg``
(which ``base.html`` links) draw the same three Gantt bars in the state colours.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from headrace.ui.render import STATIC_DIR

router = APIRouter(include_in_schema=False)

ICON_MAX_AGE = 86400
"""Seconds a browser may keep the icon without asking again."""


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The site icon."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": f"public, max-age={ICON_MAX_AGE}"},
    )


__all__ = ["router"]
