"""``create_api_app(settings, db)``: the FastAPI application of the REST API, without the web UI.

It serves:

* the REST API under ``/api/v1`` (OpenAPI document at ``/api/v1/openapi.json``, login needed),
* ``/health`` (no login),
* ``/metrics`` (Prometheus exposition, login needed unless ``/health``-like
  scraping is allowed by a token; see ``docs/metrics.md``).

``headrace.webapp.create_app`` adds the web UI (``headrace.ui``) and its static
files to it: this package never imports the UI (an import-linter contract).

Errors: a ``HeadraceError`` becomes its ``http_status`` with the JSON body
``{"detail": "<one line>", "error": "<class name>"}``; request validation
errors are 422 with FastAPI's list of problems, without the offending input
(it may be a password). A browser asking for a page (``Accept: text/html``,
path outside ``/api/``, ``/ui/data/``, ``/metrics``) gets the error from the
``error_page`` the caller passed (the UI's HTML error page), else JSON.

Every response carries ``X-Content-Type-Options: nosniff``, a
``Content-Security-Policy`` allowing only this site's scripts and no framing
(``frame-ancestors 'none'``, also ``X-Frame-Options: DENY``) and
``Referrer-Policy: same-origin``. Responses of at least ``GZIP_MINIMUM_BYTES``
are gzip-compressed for clients that accept it, except ``text/plain`` (the
followed log stream must not wait for a compressor, and ``/metrics``) and
``text/html`` (pages hold the CSRF token next to reflected input: no
compression-oracle, BREACH-style, guessing of it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import CapacityLimiter
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headrace import __version__
from headrace.api.auth import require
from headrace.api.cookies import SessionCookieMiddleware
from headrace.api.routes import API_ROUTERS, ROOT_ROUTERS
from headrace.api.sessions import SessionPolicy
from headrace.api.throttle import LoginThrottle
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.exceptions import AuthenticationError, HeadraceError, LoginThrottled
from headrace.observability.metrics import ApiMetrics

API_PREFIX = "/api/v1"
GZIP_MINIMUM_BYTES = 1000
"""Responses smaller than this are sent uncompressed."""
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""Scripts only from /static (no inline script, no eval): an injected ``<script>`` would not run."""
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]
_NOT_PAGES = (f"{API_PREFIX}/", "/ui/data/", "/metrics", "/health", "/static/")

ErrorPage = Callable[[Request, int, str], Response]
"""``error_page(request, status_code, message)``: how a browser navigating to a page sees an error."""


def error_body(exc: HeadraceError) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"detail": str(exc), "error": type(exc).__name__}


def wants_page(request: Request) -> bool:
    """True for a browser navigating to a UI page: ``Accept`` names ``text/html`` and the path is no API."""
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(_NOT_PAGES)


def _error_handlers(error_page: ErrorPage | None) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The handlers of ``HeadraceError`` and of Starlette's own errors, showing pages through ``error_page``."""

    async def headrace_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HeadraceError)
        if error_page is not None and wants_page(request):
            return error_page(request, exc.http_status, str(exc))
        headers = {"WWW-Authenticate": 'Bearer realm="headrace"'} if isinstance(exc, AuthenticationError) else None
        if isinstance(exc, LoginThrottled):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Starlette's own errors (unknown path 404, 405): a page for a browser, else FastAPI's JSON."""
        assert isinstance(exc, StarletteHTTPException)
        if error_page is not None and wants_page(request) and exc.status_code >= 400:
            return error_page(request, exc.status_code, f"{request.url.path}: {exc.detail}")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    return headrace_error, http_error


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's problems minus ``input`` and ``ctx``: the rejected value may be a password."""
    assert isinstance(exc, RequestValidationError)
    problems = [{k: v for k, v in err.items() if k not in ("input", "ctx", "url")} for err in exc.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (a header the route set itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_api_app(
    settings: Settings,
    db: Database,
    *,
    metrics_registry: CollectorRegistry | None = None,
    error_page: ErrorPage | None = None,
) -> FastAPI:
    """Build the REST API application for ``settings`` on ``db`` (the schema must be migrated).

    ``metrics_registry``: the scheduler's Prometheus registry when the scheduler
    runs in this process (``standalone``); ``/metrics`` then shows it too.
    ``error_page``: renders errors for a browser navigating to a page (see
    :func:`wants_page`); without it every error is JSON.
    """
    app = FastAPI(
        title="headrace",
        version=__version__,
        description="REST API of headrace: DAGs, DAG runs, task instances, tries, logs, XComs, pools, "
        "variables, connections. Authenticate with a Bearer API token (`headrace users token`), HTTP Basic, "
        "or the UI's session cookie plus the X-CSRF-Token header.",
        openapi_url=None,  # served below, behind a login like everything but /health
        docs_url=None,  # Swagger UI would load from a CDN; the UI links to the document instead
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.encryptor = Encryptor.from_settings(settings)  # reads or creates the key file once
    app.state.metrics_registry = metrics_registry
    app.state.session_policy = SessionPolicy.from_settings(settings)
    app.state.login_throttle = LoginThrottle.from_settings(settings)
    app.state.password_hash_limiter = CapacityLimiter(settings.get_int("api", "password_hash_concurrency"))
    app.state.api_metrics = ApiMetrics()
    app.add_middleware(SessionCookieMiddleware, settings=settings, max_age=settings.get_int("api", "session_lifetime"))
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MINIMUM_BYTES,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/plain", "text/html"),
    )
    app.add_middleware(SecurityHeadersMiddleware)
    headrace_error, http_error = _error_handlers(error_page)
    app.add_exception_handler(HeadraceError, headrace_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    for router in ROOT_ROUTERS:
        app.include_router(router)

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False, dependencies=[Depends(require("viewer"))])
    def openapi_document() -> JSONResponse:
        """The OpenAPI document of the REST API (any logged-in user)."""
        return JSONResponse(app.openapi())

    return app


create_app = create_api_app
"""The REST API application (the name code outside the server used before the UI moved out of this package).

The whole server, with the web UI, is ``headrace.webapp.create_app``.
"""

__all__ = [
    "API_PREFIX",
    "CONTENT_SECURITY_POLICY",
    "GZIP_MINIMUM_BYTES",
    "ErrorPage",
    "SecurityHeadersMiddleware",
    "create_api_app",
    "create_app",
    "error_body",
    "wants_page",
]
