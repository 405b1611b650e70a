"""A task instance's page (``GET /dags/{dag_id}/runs/{run_id}/tasks/{task_id}``): its tries and their logs.

The page (``static/task_instance.js``) reads the REST API for the task instance,
its tries (process identity, memory, CPU, exit) and each try's log.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}")
def task_instance_page(request: Request, dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> Response:
    """A task instance: its tries (process identity, memory, CPU, exit) and a log viewer per try."""
    if session_principal(request) is None:
        return login_redirect(request)
    return page(request, "task_instance.html", title=f"{task_id} · {dag_id}", run_id=run_id, task_id=task_id,
                try_number=try_number, **dag_context(request, dag_id))


__all__ = ["router"]
