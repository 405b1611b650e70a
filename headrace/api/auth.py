"""Who is calling, and may they: FastAPI dependencies for authentication, roles and CSRF.

A request is authenticated by the first of:

1. ``Authorization: Bearer hr_…`` — an API token (scripts; no CSRF check, as
   the browser never sends it by itself);
2. ``Authorization: Basic …`` — username and password (scripts, curl);
3. the signed session cookie set by ``POST /api/v1/auth/login`` or the UI's
   login form. It names a server-side session (``headrace.api.sessions``):
   logging out, a password or role change, or deleting the user ends it.

Session-authenticated requests that change something (any method but GET,
HEAD, OPTIONS) must carry the session's CSRF token, in the ``X-CSRF-Token``
header or a ``csrf_token`` form field (synchronizer-token pattern, OWASP CSRF
Prevention Cheat Sheet). The token is made at login and returned by
``GET /api/v1/auth/me``.

Passwords are checked off the event loop, at most
``api.password_hash_concurrency`` at once, and only after the login throttle
(``headrace.api.throttle``) let the attempt through: a flood of wrong
passwords costs a 429, not a hash. Each failure is logged (username and
address, never the password) and counted in ``headrace_login_failures_total``.

Use ``Depends(require("operator"))`` on a route or router: it answers 401
without a valid login and 403 when the role is not enough.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Request

from headrace.api.sessions import (
    SessionPolicy,
    end_session,
    end_user_sessions,
    session_user,
    start_session,
    touch_session,
)
from headrace.api.throttle import LoginThrottle
from headrace.api.users import Principal, authenticate, principal, role_allows, user_for_token
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.exceptions import AuthenticationError, LoginThrottled, PermissionDenied
from headrace.observability.metrics import ApiMetrics

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_ID = "sid"
"""Key of the session id in the signed cookie (the user id is never in it)."""
SESSION_CSRF = "csrf"


def get_db(request: Request) -> Database:
    """The app's :class:`Database` (set by ``create_app``)."""
    db = request.app.state.db
    assert isinstance(db, Database)
    return db


def get_encryptor(request: Request) -> Encryptor:
    """The app's :class:`~headrace.crypto.Encryptor` (built once by ``create_app``)."""
    enc = request.app.state.encryptor
    assert isinstance(enc, Encryptor)
    return enc


def client_address(request: Request) -> str | None:
    """The caller's IP address (a trusted proxy's ``X-Forwarded-For`` already applied by uvicorn)."""
    return request.client.host if request.client is not None else None


def csrf_token(request: Request) -> str:
    """The CSRF token of this session, made if it has none yet (for forms and the login page)."""
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return str(token)


def check_csrf(request: Request, supplied: str | None) -> None:
    """Raise ``PermissionDenied`` unless ``supplied`` is this session's CSRF token."""
    expected = request.session.get(SESSION_CSRF)
    if not expected or not supplied or not hmac.compare_digest(str(expected), supplied):
        raise PermissionDenied("missing or wrong CSRF token: send the X-CSRF-Token header (see GET /api/v1/auth/me)")


def _count_failure(request: Request, username: str | None, via: str) -> None:
    """Count one failed login against ``username`` (if any) and the caller's address; log it."""
    address = client_address(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    metrics: ApiMetrics = request.app.state.api_metrics
    metrics.login_failures.labels(via, "wrong_credentials").inc()
    reached = throttle.record_failure(username, address)
    log.warning("failed login (%s) for user %r from %s", via, username, address)
    if reached:
        log.warning(
            "login throttled (%s): user %r or address %s failed %d times within %g s; further attempts get 429",
            via,
            username,
            address,
            throttle.max_failures,
            throttle.window_seconds,
        )


def _check_throttle(request: Request, username: str | None, via: str) -> None:
    """Raise ``LoginThrottled`` (429) if ``username`` or the caller's address failed too often lately."""
    throttle: LoginThrottle = request.app.state.login_throttle
    wait = throttle.retry_after(username, client_address(request))
    if wait is not None:
        metrics: ApiMetrics = request.app.state.api_metrics
        metrics.login_failures.labels(via, "throttled").inc()
        raise LoginThrottled(f"too many failed logins; try again in {wait} s", retry_after=wait)


async def check_password(request: Request, username: str, password: str, via: str) -> Principal:
    """The active user with this username and password, checked off the event loop.

    ``via``: ``session`` (a login form or ``POST /auth/login``) or ``basic``. Raises
    ``LoginThrottled`` (429) before hashing when the username or address failed too often lately,
    and ``AuthenticationError`` (401) for a wrong username or password (counted by the throttle).
    """
    _check_throttle(request, username, via)
    db = get_db(request)

    def check() -> Principal:
        # Again, now that this request holds a hashing slot: many wrong logins sent at once all passed the
        # first check, and each failure is counted before its slot is given back, so at most
        # ``api.password_hash_concurrency - 1`` guesses get past the limit.
        _check_throttle(request, username, via)
        with db.session() as session:
            try:
                return principal(authenticate(session, username, password, now=datetime.now(UTC)), via)
            except AuthenticationError:
                _count_failure(request, username, via)
                raise

    limiter: CapacityLimiter = request.app.state.password_hash_limiter
    who = await anyio.to_thread.run_sync(check, limiter=limiter)
    request.app.state.login_throttle.record_success(username)
    return who


def login_session(request: Request, who: Principal) -> str:
    """Start a server-side session for ``who`` and put it in the cookie (new CSRF token); return the CSRF token."""
    policy: SessionPolicy = request.app.state.session_policy
    previous = request.session.get(SESSION_ID) if "session" in request.scope else None
    with get_db(request).session() as session:
        if previous is not None:  # a login over a session ends it: its cookie must not come back to life
            end_session(session, str(previous))
        session_id = start_session(session, who.user_id, policy, now=datetime.now(UTC))
    request.session.clear()
    request.session[SESSION_ID] = session_id
    return csrf_token(request)


def has_session(request: Request) -> bool:
    """True if this request's cookie names a session (valid or not)."""
    return "session" in request.scope and request.session.get(SESSION_ID) is not None


def logout_session(request: Request, *, everywhere: bool = False) -> None:
    """End this request's session (``everywhere``: every session of its user) and empty the cookie."""
    session_id = request.session.get(SESSION_ID) if "session" in request.scope else None
    if session_id is not None:
        with get_db(request).session() as session:
            if everywhere:
                live = session_user(session, str(session_id), request.app.state.session_policy, now=datetime.now(UTC))
                if live is not None:
                    end_user_sessions(session, live.user.id)
            end_session(session, str(session_id))
    if "session" in request.scope:
        request.session.clear()


def session_principal(request: Request) -> Principal | None:
    """The user of this request's session, or ``None`` (no cookie, or the session ended: logout,
    lifetime, idle timeout, password or role change, user disabled or deleted). An ended session's
    cookie is emptied."""
    if "session" not in request.scope:
        return None
    session_id = request.session.get(SESSION_ID)
    if session_id is None:
        return None
    now = datetime.now(UTC)
    db = get_db(request)
    with db.read_session() as session:
        live = session_user(session, str(session_id), request.app.state.session_policy, now=now)
        who = principal(live.user, "session") if live is not None else None
        needs_touch = live is not None and live.needs_touch
    if who is None:
        request.session.clear()
        return None
    if needs_touch:
        with db.session() as session:
            touch_session(session, str(session_id), now=now)
    return who


def _from_token(request: Request, token: str) -> Principal:
    _check_throttle(request, None, "token")
    try:
        with get_db(request).session() as session:
            return principal(user_for_token(session, token, now=datetime.now(UTC)), "token")
    except AuthenticationError:
        _count_failure(request, None, "token")
        raise


async def _from_header(request: Request, header: str) -> Principal:
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return _from_token(request, value)
    if scheme.lower() == "basic" and value:
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationError("malformed Basic credentials") from None
        return await check_password(request, username, password, "basic")
    raise AuthenticationError("unsupported Authorization scheme; use Bearer <API token> or Basic")


async def current_principal(request: Request) -> Principal:
    """The caller, from a token, Basic credentials or the session; raises ``AuthenticationError`` (401).

    Also enforces CSRF on session-authenticated unsafe requests (``PermissionDenied``, 403) and the
    login throttle on tokens and Basic credentials (``LoginThrottled``, 429).
    The result is cached on ``request.state.principal``.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization")
    if header:
        who = await _from_header(request, header)
    else:
        found = session_principal(request)
        if found is None:
            raise AuthenticationError(
                "not logged in (or the session ended): log in, or send Authorization: Bearer <API token>"
            )
        who = found
        if request.method not in SAFE_METHODS:
            supplied = request.headers.get("x-csrf-token")
            if supplied is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            ):
                supplied = str((await request.form()).get("csrf_token") or "") or None
            check_csrf(request, supplied)
    request.state.principal = who
    return who


def require(role: str) -> Callable[[Request], object]:
    """A dependency that returns the caller's :class:`Principal` if its role allows ``role``.

    Raises ``AuthenticationError`` (401) without a login and ``PermissionDenied`` (403) when
    the caller's role is below ``role``.
    """

    async def dependency(request: Request) -> Principal:
        who = await current_principal(request)
        if not role_allows(who.role, role):
            raise PermissionDenied(
                f"user {who.username!r} has role {who.role!r}; this needs {role!r}", role=who.role, needed=role
            )
        return who

    dependency.__name__ = f"require_{role}"
    return dependency


__all__ = [
    "check_csrf",
    "check_password",
    "client_address",
    "csrf_token",
    "current_principal",
    "get_db",
    "get_encryptor",
    "has_session",
    "login_session",
    "logout_session",
    "require",
    "session_principal",
]
