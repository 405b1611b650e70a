"""The web UI's HTML pages: server-rendered Jinja2 templates plus small vanilla JS that reads the REST API.

Adding a page from another module (e.g. ``headrace/ui/pages_extra.py``)::

    from fastapi import APIRouter, Request
    from fastapi.responses import Response
    from headrace.ui.views import page

    router = APIRouter(include_in_schema=False)

    @router.get("/pools")
    def pools(request: Request) -> Response:
        return page(request, "pools.html", title="Pools")

then append ``pages_extra.router`` to ``ROOT_ROUTERS`` in ``headrace/api/routes/__init__.py``.
The template starts with ``{% extends "base.html" %}``, fills ``{% block content %}``
and, for JS, ``{% block scripts %}`` (load ``/static/ui.js`` first for ``hr.api``,
``hr.poll`` and friends). ``page`` redirects to ``/login?next=…`` when nobody is
logged in and puts ``user`` (a :class:`Principal`), ``csrf_token``, ``can_operate``
and ``title`` in the template context. Template files live in ``headrace/ui/templates``
(one directory for every page module).

Pages never change state themselves: buttons call the REST API with the
session's CSRF token (``X-CSRF-Token``), so a viewer's refused action shows the
API's 403 message. Only login and logout are form posts handled here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from headrace.api.auth import SESSION_USER, check_csrf, csrf_token, get_db, login_session
from headrace.api.users import Principal, authenticate, principal, role_allows
from headrace.db.models import DagModel, User
from headrace.exceptions import AuthenticationError, DagNotFound, PermissionDenied
from headrace.ui.data import current_serialized

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
"""The UI's template environment; every page module renders through :func:`page`."""

router = APIRouter(include_in_schema=False)


def session_principal(request: Request) -> Principal | None:
    """The user logged in through this browser session, or ``None`` (no session, user gone or disabled)."""
    if "session" not in request.scope:
        return None
    uid = request.session.get(SESSION_USER)
    if uid is None:
        return None
    with get_db(request).read_session() as session:
        user = session.get(User, uid)
        if user is None or not user.is_active:
            return None
        return principal(user, "session")


def login_redirect(request: Request) -> RedirectResponse:
    """A 303 to the login page that comes back to this page (path and query) afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def page(request: Request, template: str, *, status_code: int = 200, **ctx: Any) -> Response:
    """Render ``template`` for the logged-in user, or redirect to ``/login?next=…`` if nobody is.

    The context holds ``ctx`` plus ``user`` (:class:`Principal`), ``csrf_token`` (str),
    ``can_operate`` (bool: role operator or admin) and ``request``.
    """
    who = session_principal(request)
    if who is None:
        return login_redirect(request)
    context = {"user": who, "csrf_token": csrf_token(request), "can_operate": role_allows(who.role, "operator"),
               "title": "headrace", **ctx}
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An HTML page saying ``message`` with ``status_code`` (a browser's view of an API error).

    Nobody logged in: the login redirect instead (the page reveals nothing, e.g. whether a DAG exists).
    """
    if session_principal(request) is None:
        return login_redirect(request)
    return page(request, "error.html", status_code=status_code, title=f"Error {status_code}",
                status=status_code, message=message)


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
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "csrf_token": csrf_token(request),
                                                              "error": None, "title": "Log in", "user": None})


@router.post("/login")
def login_submit(request: Request, username: str = Form(""), password: str = Form(""),
                 csrf_token_field: str = Form("", alias="csrf_token"), next: str = Form("/")) -> Response:  # noqa: A002
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
            request, "login.html",
            {"next": target, "csrf_token": csrf_token(request), "error": str(exc), "title": "Log in", "user": None,
             "username": username},
            status_code=exc.http_status)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token_field: str = Form("", alias="csrf_token")) -> Response:
    """End the session (CSRF-checked, so another site cannot log a user out) and go to the login page."""
    if request.session.get(SESSION_USER) is not None:
        check_csrf(request, csrf_token_field or None)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def dag_list(request: Request) -> Response:
    """The DAG list: recent run states, schedule, next run, pause toggle, tags, import errors banner."""
    return page(request, "dags.html", title="DAGs", nav="dags")


def _dag_context(request: Request, dag_id: str) -> dict[str, Any]:
    """What every DAG page's header needs; raises ``DagNotFound`` (404).

    Call it only for a logged-in user (check :func:`session_principal` first): an anonymous caller must not learn which DAGs exist.
    """
    with get_db(request).read_session() as session:
        dag = session.get(DagModel, dag_id)
        if dag is None:
            raise DagNotFound(f"no DAG {dag_id!r}; see the DAG list at /", dag_id=dag_id)
        return {"dag_id": dag_id, "is_paused": dag.is_paused, "schedule": dag.schedule, "fileloc": dag.fileloc,
                "description": dag.description, "nav": "dags"}


@router.get("/dags/{dag_id}/grid")
def grid_page(request: Request, dag_id: str, run_id: str | None = None) -> Response:
    """Runs × tasks coloured by state, live; Trigger, and Clear / Mark for the selected run."""
    if session_principal(request) is None:
        return login_redirect(request)
    return page(request, "grid.html", title=f"{dag_id} · grid", tab="grid", run_id=run_id,
                **_dag_context(request, dag_id))


@router.get("/dags/{dag_id}/graph")
def graph_page(request: Request, dag_id: str, run_id: str | None = None) -> Response:
    """The DAG laid out by dagre, nodes coloured by the selected run's task states, live."""
    if session_principal(request) is None:
        return login_redirect(request)
    return page(request, "graph.html", title=f"{dag_id} · graph", tab="graph", run_id=run_id,
                **_dag_context(request, dag_id))


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}")
def task_instance_page(request: Request, dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> Response:
    """A task instance: its tries (process identity, memory, CPU, exit) and a log viewer per try."""
    if session_principal(request) is None:
        return login_redirect(request)
    return page(request, "task_instance.html", title=f"{task_id} · {dag_id}", run_id=run_id, task_id=task_id,
                try_number=try_number, **_dag_context(request, dag_id))


@router.get("/dags/{dag_id}/trigger")
def trigger_page(request: Request, dag_id: str) -> Response:
    """A form built from the DAG's ``params`` plus logical date and raw conf JSON; it posts to the REST API."""
    if session_principal(request) is None:
        return login_redirect(request)
    ctx = _dag_context(request, dag_id)
    with get_db(request).read_session() as session:
        params = current_serialized(session, dag_id).get("params") or {}
    fields = [param_field(name, value) for name, value in sorted(params.items())]
    return page(request, "trigger.html", title=f"Trigger {dag_id}", fields=fields, **ctx)


def param_field(name: str, default: Any) -> dict[str, Any]:
    """How the trigger form shows param ``name``: ``{"name", "kind", "value"}``.

    ``kind`` is ``bool`` (checkbox), ``int``/``float`` (number), ``str`` (text) or ``json``
    (a textarea holding the default as JSON, for lists, dicts and ``None``).
    """
    if isinstance(default, bool):
        return {"name": name, "kind": "bool", "value": default}
    if isinstance(default, int):
        return {"name": name, "kind": "int", "value": default}
    if isinstance(default, float):
        return {"name": name, "kind": "float", "value": default}
    if isinstance(default, str):
        return {"name": name, "kind": "str", "value": default}
    return {"name": name, "kind": "json", "value": json.dumps(default, indent=2)}


__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "error_page", "login_redirect", "page", "param_field", "router", "session_principal", "templates"]
