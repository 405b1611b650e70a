"""The session cookie ``headrace_session``: Starlette's signed ``SessionMiddleware``, made ``Secure`` per ``api.secure_cookies``.

The cookie is signed (itsdangerous, with ``api.secret_key``), ``HttpOnly``
and ``SameSite=Lax``; it holds the session id and the CSRF token (see
``headrace.api.sessions``). ``api.secure_cookies``:

* ``true`` — always ``Secure`` (browsers send it over HTTPS only);
* ``false`` — never (plain HTTP, e.g. on a private network);
* ``auto`` (default) — ``Secure`` when ``api.base_url`` starts with
  ``https://``, else per request: when the request came over HTTPS, to the
  server itself or through a proxy it trusts (uvicorn's ``--forwarded-allow-ips``,
  127.0.0.1 by default) that sent ``X-Forwarded-Proto: https``. A plain-HTTP
  server on loopback (``headrace standalone``) keeps working.
"""

from __future__ import annotations

from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from headrace.config import Settings
from headrace.crypto import session_secret

SESSION_COOKIE = "headrace_session"


def cookie_is_always_secure(settings: Settings) -> bool | None:
    """``True``/``False`` when ``api.secure_cookies`` decides for every request, ``None`` when each request does."""
    mode = settings.get_str("api", "secure_cookies")
    if mode == "auto":
        return True if settings.get_str("api", "base_url").lower().startswith("https://") else None
    return mode == "true"


class SessionCookieMiddleware:
    """Starlette's ``SessionMiddleware`` with the ``Secure`` flag decided by :func:`cookie_is_always_secure`.

    ``max_age``: seconds the browser keeps the cookie (``api.session_lifetime``; the server ends the
    session itself too).
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, max_age: int) -> None:
        options = {
            "secret_key": session_secret(settings),
            "session_cookie": SESSION_COOKIE,
            "max_age": max_age,
            "same_site": "lax",
        }
        self.always = cookie_is_always_secure(settings)
        self.secure = SessionMiddleware(app, https_only=True, **options)  # type: ignore[arg-type]
        self.plain = SessionMiddleware(app, https_only=False, **options)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = self.always if self.always is not None else scope.get("scheme") in ("https", "wss")
        await (self.secure if secure else self.plain)(scope, receive, send)


__all__ = ["SESSION_COOKIE", "SessionCookieMiddleware", "cookie_is_always_secure"]
