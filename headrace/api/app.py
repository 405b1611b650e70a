"""``create_app(settings, db)``: the FastAPI application behind ``headrace api-server``.

It serves, from one process:

* the REST API under ``/api/v1`` (OpenAPI document at ``/api/v1/openapi.json``),
* ``/health`` (no login),
* ``/metrics`` (Prometheus exposition, login needed unless ``/health``-like
  scraping is allowed by a token; see ``docs/metrics.md``),
* the web UI (``headrace.ui``) and its vendored static files.

Errors: a ``HeadraceError`` becomes its ``http_status`` with the JSON body
``{"detail": "<one line>", "error": "<class name>"}``; request validation
errors are 422 with FastAPI's list of problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.middleware.sessions import SessionMiddleware

from headrace import __version__
from headrace.api.routes import API_ROUTERS, ROOT_ROUTERS
from headrace.config import Settings
from headrace.crypto import session_secret
from headrace.db.engine import Database
from headrace.exceptions import AuthenticationError, HeadraceError

API_PREFIX = "/api/v1"


def error_body(exc: HeadraceError) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"detail": str(exc), "error": type(exc).__name__}


async def _headrace_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HeadraceError)
    headers = {"WWW-Authenticate": 'Bearer realm="headrace"'} if isinstance(exc, AuthenticationError) else None
    return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)


def create_app(settings: Settings, db: Database, *, metrics_registry: CollectorRegistry | None = None) -> FastAPI:
    """Build the application for ``settings`` on ``db`` (the schema must be migrated).

    ``metrics_registry``: the scheduler's Prometheus registry when the scheduler
    runs in this process (``standalone``); ``/metrics`` then shows it too.
    """
    app = FastAPI(
        title="headrace",
        version=__version__,
        description="REST API of headrace: DAGs, DAG runs, task instances, tries, logs, XComs, pools, "
        "variables, connections. Authenticate with a Bearer API token (`headrace users token`), HTTP Basic, "
        "or the UI's session cookie plus the X-CSRF-Token header.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # Swagger UI would load from a CDN; the UI links to the document instead
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.metrics_registry = metrics_registry
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="headrace_session",
        max_age=int(settings.get("api", "session_max_age")),
        same_site="lax",
        https_only=False,
    )
    app.add_exception_handler(HeadraceError, _headrace_error)
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    for router in ROOT_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent.parent / "ui" / "static"), name="static")
    return app


__all__ = ["API_PREFIX", "create_app", "error_body"]
