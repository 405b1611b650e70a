"""A task instance's page (``GET /dags/{dag_id}/runs/{run_id}/tasks/{task_id}``): its tries and their logs.

The page (``static/task_instance.js``) reads the REST API for the task instance,
its tries (process identity, memory, CPU, exit) and each try's log, and
``GET /ui/data/dags/{dag_id}/runs/{run_id}/tasks/{task_id}`` for its upstream
tasks and their states in that run, so an ``upstream_failed`` task instance
names the upstream task that failed. An unknown DAG, DAG run or task is the
HTML 404 error page.

Two more tabs (``static/ti_tabs.js``): **XCom** (``…/xcomEntries`` of the REST API) and **Rendered
templates** (``GET /ui/data/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/rendered``: the fields as the
latest try rendered them in its task process, recorded by its supervisor — the web server never runs
the DAG's code).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api.auth import get_db, get_encryptor, require
from headrace.authoring.params import params_from_specs
from headrace.dagfiles.serialization import SerializedDag, params_dict_of
from headrace.db.models import DagRun, DagVersion, RenderedTaskInstanceFields, TaskInstance
from headrace.exceptions import DagRunNotFound, TaskNotFound
from headrace.scheduler.past import past_reason
from headrace.secrets_store import stored_secrets_masker
from headrace.states import TaskInstanceState
from headrace.ui.queries import get_run, run_tasks
from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/ui/data", tags=["ui"], include_in_schema=False)

FAILED_UPSTREAM = frozenset({TaskInstanceState.FAILED.value, TaskInstanceState.UPSTREAM_FAILED.value})
"""Upstream states that make a task instance ``upstream_failed`` under the default trigger rule."""


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}")
def task_instance_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None = None,
    map_index: Annotated[int, Query(ge=-1, le=1_000_000)] = -1,
) -> Response:
    """A task instance: its tries (process identity, memory, CPU, exit) and a log viewer per try.

    ``map_index``: one index of a mapped task (its title shows its label, the rendered ``map_index_template``,
    when it has one); without it a mapped task's page lists its indices.

    Raises ``DagNotFound`` / ``DagRunNotFound`` / ``TaskNotFound`` (the 404 error page).
    """
    if session_principal(request) is None:
        return login_redirect(request)
    ctx = dag_context(request, dag_id)
    with get_db(request).read_session() as session:
        try:
            run = get_run(session, dag_id, run_id)
        except DagRunNotFound:
            raise DagRunNotFound(
                f"DAG {dag_id!r} has no run {run_id!r}; see its runs at /dags/{dag_id}/grid",
                dag_id=dag_id,
                run_id=run_id,
            ) from None
        has_ti = (
            session.scalars(
                select(TaskInstance.id).where(TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id)
            ).first()
            is not None
        )
        label = (
            session.scalar(
                select(TaskInstance.rendered_map_index).where(
                    TaskInstance.dag_run_id == run.id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.map_index == map_index,
                )
            )
            if map_index >= 0
            else None
        )
        if not has_ti and task_id not in run_tasks(session, run):
            raise TaskNotFound(
                f"DAG run {run_id!r} of {dag_id!r} has no task {task_id!r}",
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
            )
        params = task_params_of(session, run, task_id)
        spec = run_tasks(session, run).get(task_id, {})
        is_mapped = spec.get("expand_input") is not None or spec.get("mapped_group") is not None
    return page(
        request,
        "task_instance.html",
        title=f"{task_id}{f' [{label or map_index}]' if map_index >= 0 else ''} · {dag_id}",
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        map_index=map_index,
        rendered_map_index=label,
        is_mapped=is_mapped,
        params=params,
        **ctx,
    )


def task_params_of(session: Session, run: DagRun, task_id: str) -> list[dict[str, str | None]]:
    """The params task ``task_id`` has in DAG run ``run``'s DAG version, for the page: the DAG's, merged with
    the task groups' ``default_args['params']`` and the task's own ``params=``.

    Returns ``[{name, default, description}]`` in declaration order; ``default`` is the JSON text of the
    default, or None when the param has none. ``[]`` when the run's DAG version is gone.
    """
    version = session.get(DagVersion, run.dag_version_id)
    if version is None:
        return []
    task = version.serialized.get("tasks", {}).get(task_id, {})
    own = task.get("params")
    params = params_from_specs(own) if own is not None else params_dict_of(version.serialized)
    return [
        {
            "name": name,
            "default": json.dumps(p.value, sort_keys=True) if p.has_value else None,
            "description": p.description,
        }
        for name, p in params.items_params()
    ]


def upstream_of(session: Session, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """The upstream tasks of ``task_id`` in DAG run ``run_id`` (that run's DAG version) and their states.

    Returns ``{task_id, trigger_rule, upstream: [{task_id, state}] (by task id), failed: [task_id, …], waiting}``
    where ``failed`` are the upstream task instances that ended ``failed`` or ``upstream_failed`` and
    ``waiting`` is why the previous run holds the task instance (``depends_on_past``), else None.
    Raises ``DagNotFound`` / ``DagRunNotFound`` (404).
    """
    run = get_run(session, dag_id, run_id)
    task = run_tasks(session, run).get(task_id, {})
    upstream_ids = sorted(task.get("upstream_task_ids", ()))
    states: dict[str, str] = (
        {
            tid: state
            for tid, state in session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(
                    TaskInstance.dag_run_id == run.id, TaskInstance.task_id.in_(upstream_ids)
                )
            )
        }
        if upstream_ids
        else {}
    )
    upstream = [{"task_id": tid, "state": states.get(tid)} for tid in upstream_ids]
    return {
        "task_id": task_id,
        "trigger_rule": task.get("trigger_rule"),
        "upstream": upstream,
        "failed": [u["task_id"] for u in upstream if u["state"] in FAILED_UPSTREAM],
        "waiting": _past_hold(session, run, task_id) if task.get("depends_on_past") else None,
    }


def _past_hold(session: Session, run: DagRun, task_id: str) -> str | None:
    """Why the previous DAG run holds a not-yet-scheduled task instance (``depends_on_past``), or None."""
    states = set(
        session.scalars(
            select(TaskInstance.state).where(TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id)
        )
    )  # a mapped task has one row per index: it is held while any of them waits
    if states and TaskInstanceState.NONE.value not in states:
        return None
    version = session.get(DagVersion, run.dag_version_id)
    if version is None:
        return None
    return past_reason(session, SerializedDag.from_dict(version.serialized), run.id, task_id)


@data_router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}")
def upstream(
    dag_id: str, run_id: str, task_id: str, request: Request, _who: Annotated[object, Depends(require("viewer"))]
) -> dict[str, Any]:
    """Upstream tasks of a task instance and their states (see :func:`upstream_of`)."""
    with get_db(request).read_session() as session:
        return upstream_of(session, dag_id, run_id, task_id)


def rendered_fields_of(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """The template fields of a task instance as its latest try rendered them (recorded by the supervisor).

    Returns ``{task_id, try_number, updated_at, fields: {name: text}}``; ``fields`` is None (and the
    others too) when no try has rendered them yet. Raises ``DagNotFound`` / ``DagRunNotFound`` /
    ``TaskNotFound`` (404).
    """
    run = get_run(session, dag_id, run_id)
    ti_id = session.scalars(
        select(TaskInstance.id).where(
            TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id, TaskInstance.map_index == map_index
        )
    ).first()
    if ti_id is None and task_id not in run_tasks(session, run):
        raise TaskNotFound(f"DAG run {run_id!r} of {dag_id!r} has no task {task_id!r}", dag_id=dag_id, task_id=task_id)
    row = session.get(RenderedTaskInstanceFields, ti_id) if ti_id is not None else None
    if row is None:
        return {"task_id": task_id, "try_number": None, "updated_at": None, "fields": None}
    return {
        "task_id": task_id,
        "try_number": row.try_number,
        "updated_at": row.updated_at.isoformat(),
        "fields": dict(row.rendered_fields),
    }


@data_router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/rendered")
def rendered(
    dag_id: str,
    run_id: str,
    task_id: str,
    request: Request,
    _who: Annotated[object, Depends(require("viewer"))],
    map_index: Annotated[int, Query(ge=-1, le=1_000_000)] = -1,
) -> dict[str, Any]:
    """Rendered template fields of a task instance (see :func:`rendered_fields_of`); every stored secret is
    masked again here, whatever the task itself had read."""
    with get_db(request).read_session() as session:
        out = rendered_fields_of(session, dag_id, run_id, task_id, map_index)
        if out["fields"]:
            masker = stored_secrets_masker(session, get_encryptor(request))
            out["fields"] = {name: masker.mask(text) for name, text in out["fields"].items()}
    return out


__all__ = [
    "FAILED_UPSTREAM",
    "data_router",
    "rendered",
    "rendered_fields_of",
    "router",
    "task_params_of",
    "upstream_of",
]
