"""Who is calling, and may they: FastAPI dependencies for authentication, roles and CSRF.

A request is authenticated by the first of:

1. ``Authorization: Bearer hr_…`` — an API token (scripts; no CSRF check, as
   the browser never sends it by itself);
2. ``Authorization: Basic …`` — username and password (scripts, curl);
3. the signed session cookie set by ``POST /api/v1/auth/login`` or the UI's
   login form.

Session-authenticated requests that change something (any method but GET,
HEAD, OPTIONS) must carry the session's CSRF token, in the ``X-CSRF-Token``
header or a ``csrf_token`` form field (synchronizer-token pattern, OWASP CSRF
Prevention Cheat Sheet). The token is made at login and returned by
``GET /api/v1/auth/me``.

Use ``Depends(require("operator"))`` on a route or router: it answers 401
without a valid login and 403 when the role is not enough.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Request

from headrace.api.users import Principal, authenticate, principal, role_allows, user_for_token
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.db.models import User
from headrace.exceptions import AuthenticationError, PermissionDenied

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_USER = "uid"
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


def login_session(request: Request, user: User) -> str:
    """Start a session for ``user`` (new CSRF token); return the CSRF token."""
    request.session.clear()
    request.session[SESSION_USER] = user.id
    return csrf_token(request)


def _from_header(db: Database, header: str, now: datetime) -> Principal:
    scheme, _, value = header.partition(" ")
    value = value.strip()
    with db.session() as session:
        if scheme.lower() == "bearer" and value:
            return principal(user_for_token(session, value, now=now), "token")
        if scheme.lower() == "basic" and value:
            try:
                username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthenticationError("malformed Basic credentials") from None
            return principal(authenticate(session, username, password, now=now), "basic")
    raise AuthenticationError("unsupported Authorization scheme; use Bearer <API token> or Basic")


async def current_principal(request: Request) -> Principal:
    """The caller, from a token, Basic credentials or the session; raises ``AuthenticationError`` (401).

    Also enforces CSRF on session-authenticated unsafe requests (``PermissionDenied``, 403).
    The result is cached on ``request.state.principal``.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    db = get_db(request)
    now = datetime.now(UTC)
    header = request.headers.get("authorization")
    if header:
        who = _from_header(db, header, now)
    else:
        uid = request.session.get(SESSION_USER) if "session" in request.scope else None
        if uid is None:
            raise AuthenticationError("not logged in: log in, or send Authorization: Bearer <API token>")
        with db.read_session() as session:
            user = session.get(User, uid)
            if user is None or not user.is_active:
                request.session.clear()
                raise AuthenticationError("session ended: the user no longer exists or is disabled")
            who = principal(user, "session")
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


__all__ = ["check_csrf", "csrf_token", "current_principal", "get_db", "get_encryptor", "login_session", "require"]
