"""UI pages: the Gantt chart of a DAG run, the pools page and a DAG's resources page.

* ``GET /dags/{dag_id}/runs/{run_id}/gantt`` — one bar per try on a time axis
  (retries are separate bars, coloured by the try's state, hatched when the
  supervisor ended it for ``memory_limit`` or ``execution_timeout``), drawn as
  SVG by ``static/gantt.js`` from ``/ui/data/…/gantt``; refreshes while the run
  is unfinished.
* ``GET /pools`` — the pools with their running / queued / open slots; create,
  change slots and delete through ``/api/v1/pools`` (operator; a viewer sees
  the buttons disabled). ``static/pools.js``.
* ``GET /dags/{dag_id}/resources?runs=50`` — per task, peak memory (MiB) and
  duration of every try over the last runs, with the ``memory_limit`` line
  (vendored Chart.js, ``static/vendor/chart.umd.min.js``), and a table with the
  biggest peak first. ``static/resources.js`` reads ``/ui/data/…/resources``.

Every page needs a session login (``page`` redirects to ``/login`` otherwise);
an unknown DAG or DAG run renders the page's message with status 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from headrace.api.auth import get_db
from headrace.db.models import DagModel, DagRun
from headrace.ui.data_extra import DEFAULT_RUNS, MAX_RUNS
from headrace.ui.views import page

router = APIRouter(include_in_schema=False)


def _dag_page(request: Request, dag_id: str, run_id: str | None) -> dict[str, Any]:
    """Context of a DAG page (what ``_dag_header.html`` needs), with ``missing`` set when the DAG or run is unknown."""
    ctx: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "nav": "dags", "missing": None, "dag_found": False,
                           "is_paused": False, "schedule": None, "description": None}
    with get_db(request).read_session() as session:
        dag = session.get(DagModel, dag_id)
        if dag is None:
            ctx["missing"] = f"DAG {dag_id!r} not found"
            return ctx
        ctx.update(dag_found=True, is_paused=dag.is_paused, schedule=dag.schedule, description=dag.description)
        if run_id is not None and session.scalars(
            select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        ).first() is None:
            ctx["missing"] = f"DAG run {run_id!r} of DAG {dag_id!r} not found"
    return ctx


@router.get("/dags/{dag_id}/runs/{run_id}/gantt")
def gantt_page(dag_id: str, run_id: str, request: Request) -> Response:
    """The Gantt chart of DAG run ``run_id`` (404 page for an unknown DAG or run)."""
    ctx = _dag_page(request, dag_id, run_id)
    return page(request, "gantt.html", status_code=404 if ctx["missing"] else 200,
                title=f"{dag_id} · {run_id} · Gantt", tab="gantt", **ctx)


@router.get("/pools")
def pools_page(request: Request) -> Response:
    """The pools and their slots; create / edit / delete for operators."""
    return page(request, "pools.html", title="Pools", nav="pools")


@router.get("/dags/{dag_id}/resources")
def resources_page(
    dag_id: str, request: Request, runs: int = Query(DEFAULT_RUNS, ge=1, le=MAX_RUNS)
) -> Response:
    """Peak memory and duration per task over the DAG's last ``runs`` runs (404 page for an unknown DAG)."""
    ctx = _dag_page(request, dag_id, None)
    return page(request, "resources.html", status_code=404 if ctx["missing"] else 200,
                title=f"{dag_id} · resources", tab="resources", runs=runs, **ctx)


__all__ = ["router"]
