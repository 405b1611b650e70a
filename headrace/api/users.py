"""Users, roles, passwords and API tokens (no web framework here; the CLI uses it too).

Roles, each allowing everything the one before it does:

* ``viewer`` — reads everything (DAGs, runs, logs, metrics); changes nothing.
* ``operator`` — also triggers, clears, marks, pauses and edits pools,
  variables and connections.
* ``admin`` — also manages users and API tokens of other users.

Passwords are hashed with argon2id through ``argon2-cffi``'s
``PasswordHasher`` defaults (RFC 9106). API tokens are ``hr_`` plus 32 random
bytes (url-safe base64); only their SHA-256 is stored, so a stolen database
does not yield working tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api.sessions import end_user_sessions
from headrace.db.models import ApiToken, User
from headrace.exceptions import AuthenticationError, Conflict, InvalidRequest, NotFound

ROLES: tuple[str, ...] = ("viewer", "operator", "admin")
"""Roles from least to most allowed."""

TOKEN_PREFIX = "hr_"
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is making a request."""

    user_id: int
    username: str
    role: str
    """One of :data:`ROLES`."""
    via: str
    """``session`` (UI cookie), ``token`` (Bearer API token) or ``basic`` (HTTP Basic)."""


def role_allows(role: str, needed: str) -> bool:
    """True if ``role`` may do what ``needed`` may (``admin`` ⊇ ``operator`` ⊇ ``viewer``)."""
    return ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    """Return ``role`` if it is a known role; raises ``InvalidRequest`` naming the known ones."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role


def hash_password(password: str) -> str:
    """argon2id hash of ``password``; raises ``InvalidRequest`` if shorter than 8 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def new_password() -> str:
    """A random password of 16 url-safe characters (for generated accounts)."""
    return secrets.token_urlsafe(12)


def create_user(session: Session, username: str, password: str, role: str, *, now: datetime) -> User:
    """Add a user. Raises ``Conflict`` if the username is taken, ``InvalidRequest`` for a bad role or password."""
    if not username or len(username) > 128 or username != username.strip():
        raise InvalidRequest("a username is 1–128 characters without leading or trailing spaces")
    check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, is_active=True, created_at=now)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    """The user named ``username``; raises ``NotFound``."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}; see `headrace users list`")
    return user


def set_password(session: Session, user: User, password: str) -> int:
    """Give ``user`` a new password and end all its login sessions; return how many ended.

    Raises ``InvalidRequest`` for a password shorter than 8 characters. API tokens stay valid (revoke
    them with ``DELETE /api/v1/auth/tokens/{id}``).
    """
    user.password_hash = hash_password(password)
    return end_user_sessions(session, user.id)


def set_role(session: Session, user: User, role: str) -> int:
    """Give ``user`` role ``role`` and end all its login sessions; return how many ended.

    Raises ``InvalidRequest`` for an unknown role. API tokens act with the new role from their next request.
    """
    user.role = check_role(role)
    return end_user_sessions(session, user.id)


def delete_user(session: Session, user: User) -> None:
    """Delete ``user`` with its API tokens and login sessions (its id is never given to another user)."""
    end_user_sessions(session, user.id)  # the foreign key cascades too; this does not rely on it
    session.delete(user)
    session.flush()


def authenticate(session: Session, username: str, password: str, *, now: datetime) -> User:
    """The active user with this username and password; raises ``AuthenticationError`` otherwise.

    The error does not say which of the two was wrong. A hash made with older
    argon2 parameters is upgraded on a successful login.
    """
    user = None if "\x00" in username else session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        _hasher.hash("timing-equaliser")  # about as slow as a real check
        raise AuthenticationError("wrong username or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise AuthenticationError("wrong username or password") from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, user: User, name: str, *, now: datetime, expires_in: timedelta | None = None
) -> tuple[str, ApiToken]:
    """Make an API token for ``user``; return the token (shown once) and its row."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=_token_hash(token),
        prefix=token[:10],
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
    )
    session.add(row)
    session.flush()
    return token, row


def user_for_token(session: Session, token: str, *, now: datetime) -> User:
    """The active user owning API token ``token``; raises ``AuthenticationError`` if unknown or expired."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthenticationError("unknown or expired API token")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthenticationError("the API token's user is disabled")
    row.last_used_at = now
    return user


def principal(user: User, via: str) -> Principal:
    """The :class:`Principal` of ``user`` authenticated ``via`` a session, token or basic auth."""
    return Principal(user_id=user.id, username=user.username, role=user.role, via=via)


__all__ = [
    "MIN_PASSWORD_LENGTH",
    "Principal",
    "ROLES",
    "authenticate",
    "check_role",
    "create_token",
    "create_user",
    "delete_user",
    "get_user",
    "hash_password",
    "new_password",
    "principal",
    "role_allows",
    "set_password",
    "set_role",
    "user_for_token",
]
