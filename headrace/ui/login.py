"""``GET/POST /login`` and ``POST /logout``: the only form posts the UI handles itself (CSRF-checked)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from headrace.api.auth import SESSION_USER, check_csrf, csrf_token, get_db, login_session
from headrace.api.users import authenticate
from headrace.exceptions import AuthenticationError, PermissionDenied
from headrace.ui.render import session_principal, templates

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 — the query parameter's name
    """The login form (already logged in: go to ``next``)."""
    if session_principal(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": _safe_next(next), "csrf_token": csrf_token(request), "error": None, "title": "Log in", "user": None},
    )


@router.post("/login")
def login_submit(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token_field: str = Form("", alias="csrf_token"),
    next: str = Form("/"),  # noqa: A002 - the form field's name (Airflow's ?next=)
) -> Response:
    """Check the CSRF token and password; on success start the session and redirect to ``next`` (303).

    A wrong password or CSRF token re-renders the form with the message (401 / 403).
    """
    target = _safe_next(next)
    try:
        check_csrf(request, csrf_token_field or None)
        with get_db(request).session() as session:
            user = authenticate(session, username, password, now=datetime.now(UTC))
            login_session(request, user)
    except (AuthenticationError, PermissionDenied) as exc:
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "next": target,
                "csrf_token": csrf_token(request),
                "error": str(exc),
                "title": "Log in",
                "user": None,
                "username": username,
            },
            status_code=exc.http_status,
        )
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token_field: str = Form("", alias="csrf_token")) -> Response:
    """End the session (CSRF-checked, so another site cannot log a user out) and go to the login page."""
    if request.session.get(SESSION_USER) is not None:
        check_csrf(request, csrf_token_field or None)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


__all__ = ["router"]
