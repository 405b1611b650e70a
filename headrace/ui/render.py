"""Rendering a UI page: the template environment, the login check, the error page and the DAG header.

A page module (``headrace/ui/pools.py`` is a short one) looks like::

    from fastapi import APIRouter, Request
    from fastapi.responses import Response
    from headrace.ui.render import page

    router = APIRouter(include_in_schema=False)

    @router.get("/pools")
    def pools_page(request: Request) -> Response:
        return page(request, "pools.html", title="Pools", nav="pools")

then its ``router`` goes into ``ROUTERS`` in ``headrace/ui/routes.py``. The
template starts with ``{% extends "base.html" %}``, fills ``{% block content %}``
and, for JS, ``{% block scripts %}`` (load ``/static/ui.js`` first for ``hr.api``,
``hr.poll`` and friends). :func:`page` redirects to ``/login?next=…`` when nobody
is logged in and puts ``user`` (a :class:`Principal`), ``csrf_token``,
``can_operate`` and ``title`` in the template context. Template files live in
``headrace/ui/templates``, static files in ``headrace/ui/static``.

Pages never change state themselves: buttons call the REST API with the
session's CSRF token (``X-CSRF-Token``); actions a viewer may not take are
shown disabled (``can_operate``), and the API refuses them anyway (403). Only
login and logout are form posts handled by the UI (``headrace/ui/login.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api.auth import csrf_token, get_db, session_principal
from headrace.api.users import role_allows
from headrace.db import queries
from headrace.db.models import DagModel, DagRun, DagVersion
from headrace.exceptions import DagNotFound
from headrace.ui.asset_links import dag_links
from headrace.ui.docs import doc_md_html
from headrace.ui.task_links import task_links

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
"""The UI's template environment; every page module renders through :func:`page`."""


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
    context = {
        "user": who,
        "csrf_token": csrf_token(request),
        "can_operate": role_allows(who.role, "operator"),
        "title": "headrace",
        **ctx,
    }
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An HTML page saying ``message`` with ``status_code`` (a browser's view of an API error).

    Nobody logged in: the login redirect instead (the page reveals nothing, e.g. whether a DAG exists).
    """
    if session_principal(request) is None:
        return login_redirect(request)
    return page(
        request,
        "error.html",
        status_code=status_code,
        title=f"Error {status_code}",
        status=status_code,
        message=message,
    )


def dag_header(session: Session, dag_id: str) -> dict[str, Any] | None:
    """What ``_dag_header.html`` needs about DAG ``dag_id``, or ``None`` for an unknown DAG.

    ``warnings`` are the DAG's warnings as ``{"warning_type", "message"}`` dicts (what its author wrote that
    headrace ignores); the header lists them. ``doc_html`` is the current version's ``doc_md`` rendered and
    sanitized (:func:`headrace.ui.docs.doc_md_html`), or None; the header shows it folded. ``asset_links``:
    the DAGs upstream and downstream of it through assets (:func:`headrace.ui.asset_links.dag_links`);
    ``task_links``: through ExternalTaskSensors, TriggerDagRunOperators and ExternalTaskMarkers
    (:func:`headrace.ui.task_links.task_links`).
    """
    dag = session.get(DagModel, dag_id)
    if dag is None:
        return None
    doc_md = session.scalars(  # only that key of the JSON (json_extract / ->>), not the whole serialized DAG
        select(DagVersion.serialized["doc_md"].as_string()).where(
            DagVersion.dag_id == dag_id, DagVersion.version_hash == dag.version_hash
        )
    ).first()
    warnings = [
        {"warning_type": w.warning_type, "message": w.message}
        for w in queries.dag_warnings(session, [dag_id]).get(dag_id, ())
    ]
    return {
        "dag_id": dag_id,
        "dag_display_name": dag.dag_display_name or dag_id,
        "is_paused": dag.is_paused,
        "schedule": dag.schedule,
        "fileloc": dag.fileloc,
        "description": dag.description,
        "nav": "dags",
        "warnings": warnings,
        "doc_html": doc_md_html(doc_md),
        "asset_links": dag_links(session, dag_id),
        "task_links": task_links(session, dag_id),
    }


def dag_context(request: Request, dag_id: str) -> dict[str, Any]:
    """:func:`dag_header` of ``dag_id``; raises ``DagNotFound`` (the error page, 404).

    Call it only for a logged-in user (check :func:`session_principal` first): an anonymous caller must not
    learn which DAGs exist.
    """
    with get_db(request).read_session() as session:
        header = dag_header(session, dag_id)
    if header is None:
        raise DagNotFound(f"no DAG {dag_id!r}; see the DAG list at /", dag_id=dag_id)
    return header


def run_exists(session: Session, dag_id: str, run_id: str) -> bool:
    """True if DAG ``dag_id`` has a DAG run ``run_id``."""
    return (
        session.scalars(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first() is not None
    )


def dag_page_context(request: Request, dag_id: str, run_id: str | None) -> dict[str, Any]:
    """Context of a DAG page that shows its own 404 message: the header, ``dag_found``, and ``missing``.

    ``missing`` is the message when the DAG (or the DAG run ``run_id``) is unknown, else ``None``.
    """
    ctx: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "nav": "dags",
        "missing": None,
        "dag_found": False,
        "is_paused": False,
        "schedule": None,
        "description": None,
        "warnings": [],
        "doc_html": None,
    }
    with get_db(request).read_session() as session:
        header = dag_header(session, dag_id)
        if header is None:
            ctx["missing"] = f"DAG {dag_id!r} not found"
            return ctx
        ctx.update(header, dag_found=True)
        if run_id is not None and not run_exists(session, dag_id, run_id):
            ctx["missing"] = f"DAG run {run_id!r} of DAG {dag_id!r} not found"
    return ctx


__all__ = [
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "dag_context",
    "dag_header",
    "dag_page_context",
    "error_page",
    "login_redirect",
    "page",
    "run_exists",
    "session_principal",
    "templates",
]
