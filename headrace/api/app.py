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

An unhandled exception is a 500 with ``{"detail": "internal server error…",
"error": "InternalServerError"}`` (the traceback goes to the server's log only).

Every response, errors included (404, 405, 413, 422, 500), carries
``X-Content-Type-Options: nosniff``, a ``Content-Security-Policy`` allowing
only this site's scripts and no framing (``frame-ancestors 'none'``, also
``X-Frame-Options: DENY``) and ``Referrer-Policy: same-origin``, plus
``Strict-Transport-Security`` over HTTPS when ``api.hsts_max_age`` is set
(``headrace.api.middleware``). Request bodies are limited to
``api.max_request_bytes`` and unsafe API requests without any credential are
refused before their body is read (:class:`RequestLimitsMiddleware`). Responses of at least ``GZIP_MINIMUM_BYTES``
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
from starlette.types import ASGIApp

from headrace import __version__
from headrace.api.auth import require
from headrace.api.cookies import SessionCookieMiddleware
from headrace.api.middleware import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    RequestLimitsMiddleware,
    SecurityHeadersMiddleware,
)
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
PUBLIC_UNSAFE_PATHS = (f"{API_PREFIX}/auth/login", f"{API_PREFIX}/auth/logout")
"""Unsafe API requests that need no credential: logging in, and logging out (which ends nothing when nobody is in)."""
INTERNAL_ERROR = "internal server error; the server's log has the details"
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


def _internal_error(error_page: ErrorPage | None) -> Callable[..., Any]:
    """The handler of an unhandled exception (Starlette's ``ServerErrorMiddleware`` calls it, then logs the
    traceback): a 500 without the exception's text, a page for a browser, else JSON."""

    async def internal_error(request: Request, _exc: Exception) -> Response:
        if error_page is not None and wants_page(request):
            try:
                return error_page(request, 500, INTERNAL_ERROR)
            except Exception:  # noqa: BLE001 - the page needs the DB, which may be what failed: answer JSON
                pass
        return JSONResponse({"detail": INTERNAL_ERROR, "error": "InternalServerError"}, status_code=500)

    return internal_error


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's problems minus ``input`` and ``ctx``: the rejected value may be a password."""
    assert isinstance(exc, RequestValidationError)
    problems = [{k: v for k, v in err.items() if k not in ("input", "ctx", "url")} for err in exc.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


class HeadraceApp(FastAPI):
    """FastAPI with :class:`SecurityHeadersMiddleware` as its outermost layer.

    Middleware added with ``add_middleware`` sits inside Starlette's ``ServerErrorMiddleware``, so the 500 that
    answers an unhandled exception would go out without the security headers; wrapped here, every answer
    carries them. The HSTS settings are read from ``state.settings`` when the stack is built (first request).
    """

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        return SecurityHeadersMiddleware(
            super().build_middleware_stack(),
            hsts_max_age=settings.get_int("api", "hsts_max_age"),
            https_base_url=settings.get_str("api", "base_url").lower().startswith("https://"),
        )


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
    app = HeadraceApp(
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
    app.add_middleware(  # inside the session cookie's middleware (added after it): it looks at the decoded session
        RequestLimitsMiddleware,
        max_request_bytes=settings.get_int("api", "max_request_bytes"),
        protected_prefix=f"{API_PREFIX}/",
        public_paths=PUBLIC_UNSAFE_PATHS,
    )
    app.add_middleware(SessionCookieMiddleware, settings=settings, max_age=settings.get_int("api", "session_lifetime"))
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MINIMUM_BYTES,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/plain", "text/html"),
    )
    headrace_error, http_error = _error_handlers(error_page)
    app.add_exception_handler(HeadraceError, headrace_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error(error_page))
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
    "SECURITY_HEADERS",
    "ErrorPage",
    "HeadraceApp",
    "SecurityHeadersMiddleware",
    "create_api_app",
    "create_app",
    "error_body",
    "wants_page",
]
