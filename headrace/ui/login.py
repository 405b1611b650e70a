"""``GET/POST /login`` and ``POST /logout``: the only form posts the UI handles itself (CSRF-checked)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from headrace.api.auth import check_csrf, check_password, csrf_token, has_session, login_session, logout_session
from headrace.exceptions import AuthenticationError, LoginThrottled, PermissionDenied
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
async def login_submit(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token_field: str = Form("", alias="csrf_token"),
    next: str = Form("/"),  # noqa: A002 - the form field's name (Airflow's ?next=)
) -> Response:
    """Check the CSRF token and password; on success start the session and redirect to ``next`` (303).

    A wrong password or CSRF token re-renders the form with the message (401 / 403); too many failed
    logins for the username or address lately, too (429 with ``Retry-After``, no password checked).
    """
    target = _safe_next(next)
    try:
        check_csrf(request, csrf_token_field or None)
        login_session(request, await check_password(request, username, password, "session"))
    except (AuthenticationError, PermissionDenied, LoginThrottled) as exc:
        response = templates.TemplateResponse(
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
        if isinstance(exc, LoginThrottled):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token_field: str = Form("", alias="csrf_token")) -> Response:
    """End the session on the server (CSRF-checked, so another site cannot log a user out); go to the login page."""
    if has_session(request):
        check_csrf(request, csrf_token_field or None)
    logout_session(request)
    return RedirectResponse("/login", status_code=303)


__all__ = ["router"]
