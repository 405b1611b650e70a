"""The server's armour, as pure ASGI middleware: security headers on every answer, and request limits.

:class:`SecurityHeadersMiddleware` adds :data:`SECURITY_HEADERS` (and, when
``api.hsts_max_age`` is set, ``Strict-Transport-Security``) to every HTTP
response. ``headrace.api.app`` wraps it around the whole application, outside
Starlette's ``ServerErrorMiddleware``, so the 500 answering an unhandled
exception carries them too.

:class:`RequestLimitsMiddleware` runs before any route reads a body:

1. An unsafe request (POST, PUT, PATCH, DELETE) under the protected prefix
   (``/api/v1/``) that carries no credential at all — no ``Authorization``
   header, no session with a logged-in user — is answered 401 without its body
   being read. The login and logout endpoints are exempt. This is only a
   presence check: FastAPI parses a body before it runs a route's
   dependencies, so the full check (``headrace.api.auth.require``) cannot come
   first; this one keeps an anonymous caller from making the server read and
   parse anything.
2. A body longer than ``max_request_bytes`` is answered 413: at once when
   ``Content-Length`` says so, else (chunked, no ``Content-Length``) as soon
   as the bytes received pass the limit. Reading stops there; the server never
   holds more than the limit plus one received chunk. A body within the limit
   is read whole and handed to the application as it arrived.

Their own answers are JSON like every API error:
``{"detail": "<one line>", "error": "<class name>"}``.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headrace.api.auth import SAFE_METHODS, SESSION_ID
from headrace.exceptions import AuthenticationError, HeadraceError, RequestBodyTooLarge

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
"""Sent on every response (a header the route set itself is kept)."""
NOT_LOGGED_IN = "not logged in: log in, or send Authorization: Bearer <API token>"
"""The 401 message, the same as ``headrace.api.auth.current_principal``'s."""


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response, and HSTS when configured.

    ``hsts_max_age``: seconds of ``Strict-Transport-Security: max-age=…`` (``api.hsts_max_age``; 0 sends none).
    It is sent on requests that arrived over HTTPS (``scope["scheme"]``, which uvicorn sets from TLS or a
    trusted proxy's ``X-Forwarded-Proto``), or on every request when ``https_base_url`` is true
    (``api.base_url`` starts with ``https://``: TLS ends at a proxy in front of this server).
    """

    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0, https_base_url: bool = False) -> None:
        self.app = app
        self.hsts = (b"strict-transport-security", f"max-age={hsts_max_age}".encode()) if hsts_max_age > 0 else None
        self.https_base_url = https_base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS)
        if self.hsts is not None and (self.https_base_url or scope.get("scheme") == "https"):
            extra.append(self.hsts)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestLimitsMiddleware:
    """Refuses anonymous unsafe API requests (401) and bodies over ``max_request_bytes`` (413) before they are read.

    ``max_request_bytes``: the largest body, in bytes (``api.max_request_bytes``).
    ``protected_prefix``: paths whose unsafe requests need a credential (``/api/v1/``).
    ``public_paths``: exact paths under it that do not (logging in and out).
    It must sit inside Starlette's ``SessionMiddleware`` (added to the app before it), which decodes the
    session it looks at.
    """

    def __init__(
        self, app: ASGIApp, *, max_request_bytes: int, protected_prefix: str, public_paths: Collection[str]
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.protected_prefix = protected_prefix
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self._needs_credential(scope) and not _has_credential(scope, headers):
            await _error(AuthenticationError(NOT_LOGGED_IN), {"WWW-Authenticate": 'Bearer realm="headrace"'})(
                scope, receive, send
            )
            return
        length = _content_length(headers)
        if length == 0 or (length is None and "transfer-encoding" not in headers):
            await self.app(scope, receive, send)  # no body
            return
        too_large = RequestBodyTooLarge(
            f"request body is larger than {self.max_request_bytes:,} bytes (api.max_request_bytes)",
            limit=self.max_request_bytes,
        )
        if length is not None and length > self.max_request_bytes:
            await _error(too_large)(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client left, nobody to answer
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_request_bytes:
                await _error(too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _needs_credential(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return (
            scope["method"] not in SAFE_METHODS
            and path.startswith(self.protected_prefix)
            and path not in self.public_paths
        )


def _has_credential(scope: Scope, headers: Headers) -> bool:
    """An ``Authorization`` header of any kind, or a session with a logged-in user (checked in full later)."""
    if headers.get("authorization", "").strip():
        return True
    session = scope.get("session")
    return isinstance(session, dict) and session.get(SESSION_ID) is not None


def _content_length(headers: Headers) -> int | None:
    """``Content-Length`` as a number; None when absent (the HTTP server has already refused a malformed one)."""
    value = headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that first gives the whole ``body`` read already, then whatever ``receive`` gives
    (``http.disconnect`` when the client leaves, which streaming responses listen for)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def _error(exc: HeadraceError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=exc.http_status, headers=headers)


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "NOT_LOGGED_IN",
    "SECURITY_HEADERS",
    "RequestLimitsMiddleware",
    "SecurityHeadersMiddleware",
]
