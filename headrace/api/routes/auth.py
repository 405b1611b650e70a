"""``/api/v1/auth``: log in and out (session cookie), who am I, API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from headrace.api.auth import (
    check_csrf,
    check_password,
    csrf_token,
    get_db,
    has_session,
    login_session,
    logout_session,
    require,
)
from headrace.api.users import Principal, create_token
from headrace.db.models import ApiToken, User
from headrace.exceptions import NotFound

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    """Credentials for ``POST /auth/login``."""

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    """The logged-in user and the CSRF token to send with changes (``X-CSRF-Token``)."""

    username: str
    role: str
    via: str
    csrf_token: str | None = None
    """Set for session logins; API tokens need none."""


class TokenRequest(BaseModel):
    """A new API token for the caller."""

    name: str = Field(min_length=1, max_length=128)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenCreated(BaseModel):
    """A new API token; ``token`` is shown only here."""

    id: int
    name: str
    token: str
    expires_at: datetime | None


class TokenInfo(BaseModel):
    """An API token, without its secret."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@router.post(
    "/login",
    response_model=Me,
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many failed logins for this username or address lately; see Retry-After"},
    },
)
async def login(body: LoginRequest, request: Request) -> Me:
    """Check the password and start a session (cookie ``headrace_session``, lasting ``api.session_lifetime``)."""
    who = await check_password(request, body.username, body.password, "session")
    token = login_session(request, who)
    return Me(username=who.username, role=who.role, via="session", csrf_token=token)


@router.post("/logout", status_code=204, responses={403: {"description": "logged-in session without its CSRF token"}})
def logout(
    request: Request,
    everywhere: Annotated[bool, Query(description="End every session of this user, not only this one.")] = False,
) -> None:
    """End the session on the server, so its cookie is worthless (no login needed: logging out twice is fine).

    A logged-in session must send its CSRF token (``X-CSRF-Token``), so another site cannot log the user out.
    """
    if has_session(request):
        check_csrf(request, request.headers.get("x-csrf-token"))
    logout_session(request, everywhere=everywhere)


@router.get("/me", response_model=Me, responses={401: {"description": "not logged in"}})
def me(request: Request, who: Annotated[Principal, Depends(require("viewer"))]) -> Me:
    """The caller, and for a session its CSRF token."""
    return Me(
        username=who.username,
        role=who.role,
        via=who.via,
        csrf_token=csrf_token(request) if who.via == "session" else None,
    )


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_api_token(
    body: TokenRequest, request: Request, who: Annotated[Principal, Depends(require("viewer"))]
) -> TokenCreated:
    """Make an API token acting as the caller (with the caller's role)."""
    now = datetime.now(UTC)
    with get_db(request).session() as session:
        user = session.get(User, who.user_id)
        assert user is not None
        expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
        token, row = create_token(session, user, body.name, now=now, expires_in=expires)
        return TokenCreated(id=row.id, name=row.name, token=token, expires_at=row.expires_at)


@router.get("/tokens", response_model=list[TokenInfo])
def list_api_tokens(request: Request, who: Annotated[Principal, Depends(require("viewer"))]) -> list[TokenInfo]:
    """The caller's API tokens."""
    with get_db(request).read_session() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == who.user_id).order_by(ApiToken.id))
        return [
            TokenInfo(
                id=r.id,
                name=r.name,
                prefix=r.prefix,
                created_at=r.created_at,
                expires_at=r.expires_at,
                last_used_at=r.last_used_at,
            )
            for r in rows
        ]


@router.delete("/tokens/{token_id}", status_code=204, responses={404: {"description": "no such token"}})
def delete_api_token(
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    who: Annotated[Principal, Depends(require("viewer"))],
) -> None:
    """Revoke one of the caller's API tokens."""
    with get_db(request).session() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.user_id != who.user_id:
            raise NotFound(f"you have no API token with id {token_id}")
        session.delete(row)
