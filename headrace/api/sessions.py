"""Server-side login sessions (no web framework here; the CLI uses it too).

The signed session cookie (``headrace_session``) holds a random session id
and the CSRF token, never the user id. The id names a ``user_session`` row
(only its SHA-256 is stored), and the row is what makes the session valid:

* logging out deletes the row, so a replayed cookie answers 401;
* a password change, a role change or a disabled user deletes every row of
  that user (:func:`end_user_sessions`), and deleting the user cascades;
* a session ends ``api.session_lifetime`` seconds after its login however
  busy it is, and ``api.session_idle_timeout`` seconds after its latest request.

Checking a session is one primary-key read joined to the user; its
``last_seen_at`` is written at most once per :data:`TOUCH_INTERVAL`, so a busy
page does not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from headrace.config import Settings
from headrace.db.models import User, UserSession

TOUCH_INTERVAL = timedelta(seconds=60)
"""``last_seen_at`` is updated when older than this; the idle timeout is therefore exact to within a minute."""


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions live."""

    lifetime: timedelta
    """From login to the end, however busy (``api.session_lifetime``)."""
    idle_timeout: timedelta
    """Without a request (``api.session_idle_timeout``)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        """The policy of ``settings``' ``[api]`` section."""
        return cls(
            lifetime=timedelta(seconds=settings.get_int("api", "session_lifetime")),
            idle_timeout=timedelta(seconds=settings.get_int("api", "session_idle_timeout")),
        )


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(session: Session, user_id: int, policy: SessionPolicy, *, now: datetime) -> str:
    """Record a new session of user ``user_id``; return its id (43 url-safe characters) for the cookie.

    Also deletes sessions of anyone that have ended (expired or idle), so the table holds live ones only.
    """
    purge_ended(session, policy, now=now)
    session_id = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id_hash=_hash(session_id),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.lifetime,
        )
    )
    session.flush()
    return session_id


@dataclass(frozen=True)
class LiveSession:
    """A valid session and its user, as :func:`session_user` found them."""

    user: User
    needs_touch: bool
    """True when ``last_seen_at`` is older than :data:`TOUCH_INTERVAL`: call :func:`touch_session`."""


def session_user(session: Session, session_id: str, policy: SessionPolicy, *, now: datetime) -> LiveSession | None:
    """The active user of session ``session_id``, or ``None`` if it is unknown, ended (logout, lifetime,
    idle timeout, revoked) or its user is disabled. Reads only; see :func:`touch_session`."""
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id_hash == _hash(session_id))
    ).first()
    if row is None:
        return None
    live, user = row
    if live.expires_at <= now or live.last_seen_at + policy.idle_timeout <= now or not user.is_active:
        return None
    return LiveSession(user=user, needs_touch=live.last_seen_at + TOUCH_INTERVAL <= now)


def touch_session(session: Session, session_id: str, *, now: datetime) -> None:
    """Record a request on session ``session_id`` (for the idle timeout)."""
    session.execute(
        update(UserSession)
        .where(UserSession.id_hash == _hash(session_id), UserSession.last_seen_at < now - TOUCH_INTERVAL)
        .values(last_seen_at=now)
    )


def end_session(session: Session, session_id: str) -> None:
    """End one session (logout); ending one that is already gone is fine."""
    session.execute(delete(UserSession).where(UserSession.id_hash == _hash(session_id)))


def end_user_sessions(session: Session, user_id: int) -> int:
    """End every session of user ``user_id`` (password or role change, logout everywhere); return how many."""
    result = session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


def purge_ended(session: Session, policy: SessionPolicy, *, now: datetime) -> int:
    """Delete sessions past their lifetime or idle timeout; return how many."""
    result = session.execute(
        delete(UserSession).where(
            or_(UserSession.expires_at <= now, UserSession.last_seen_at <= now - policy.idle_timeout)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


__all__ = [
    "TOUCH_INTERVAL",
    "LiveSession",
    "SessionPolicy",
    "end_session",
    "end_user_sessions",
    "purge_ended",
    "session_user",
    "start_session",
    "touch_session",
]
