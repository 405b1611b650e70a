"""``/api/v1/dags/{dag_id}/dagRuns``: list, trigger, get, mark and clear DAG runs."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.api.routes.dags import get_dag
from headrace.db.models import DagRun
from headrace.exceptions import DagRunConfError, DagRunNotFound, ParamValidationError
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.user_actions import mark_dag_run
from headrace.states import DagRunState

router = APIRouter(tags=["DAGRun"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
NOT_FOUND = not_found("no such DAG or DAG run")


class RunOrder(str, Enum):
    """Sort keys of ``GET …/dagRuns`` (``-`` for descending)."""

    logical_date = "logical_date"
    logical_date_desc = "-logical_date"
    start_date = "start_date"
    start_date_desc = "-start_date"
    end_date = "end_date"
    end_date_desc = "-end_date"
    queued_at = "queued_at"
    queued_at_desc = "-queued_at"
    run_id = "dag_run_id"
    run_id_desc = "-dag_run_id"


_ORDER_COLUMNS = {
    "logical_date": DagRun.logical_date,
    "start_date": DagRun.start_date,
    "end_date": DagRun.end_date,
    "queued_at": DagRun.queued_at,
    "dag_run_id": DagRun.run_id,
}


def get_run(session: Session, dag_id: str, dag_run_id: str) -> DagRun:
    """The DAG run ``dag_run_id`` of ``dag_id``; raises ``DagNotFound`` / ``DagRunNotFound`` (404)."""
    run = session.scalars(
        select(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.run_id == dag_run_id)
        .execution_options(populate_existing=True)
    ).first()
    if run is None:
        get_dag(session, dag_id)
        raise DagRunNotFound(f"DAG {dag_id!r} has no run {dag_run_id!r}", dag_id=dag_id, run_id=dag_run_id)
    return run


def run_out(run: DagRun) -> schemas.DAGRun:
    """The API form of a ``dag_run`` row."""
    return schemas.DAGRun(
        dag_id=run.dag_id,
        dag_run_id=run.run_id,
        run_type=run.run_type,
        state=run.state,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        queued_at=run.queued_at,
        start_date=run.start_date,
        end_date=run.end_date,
        conf=dict(run.conf or {}),
    )


@router.get(
    "/dags/{dag_id}/dagRuns",
    response_model=schemas.DAGRunCollection,
    dependencies=[VIEWER],
    responses={404: {"description": "no such DAG"}},
)
def list_runs(
    dag_id: str,
    request: Request,
    pg: Annotated[Page, Depends(page)],
    state: Annotated[list[DagRunState] | None, Query(description="Only runs in one of these states.")] = None,
    run_type: Annotated[list[str] | None, Query(description="scheduled, manual or backfill.")] = None,
    logical_date_gte: Annotated[schemas.UtcDatetime | None, Query()] = None,
    logical_date_lte: Annotated[schemas.UtcDatetime | None, Query()] = None,
    order_by: Annotated[RunOrder, Query()] = RunOrder.logical_date_desc,
) -> schemas.DAGRunCollection:
    """Runs of a DAG, newest logical date first unless ``order_by`` says otherwise."""
    stmt = select(DagRun).where(DagRun.dag_id == dag_id)
    if state:
        stmt = stmt.where(DagRun.state.in_([s.value for s in state]))
    if run_type:
        stmt = stmt.where(DagRun.run_type.in_(run_type))
    if logical_date_gte is not None:
        stmt = stmt.where(DagRun.logical_date >= logical_date_gte)
    if logical_date_lte is not None:
        stmt = stmt.where(DagRun.logical_date <= logical_date_lte)
    key = order_by.value.lstrip("-")
    column = _ORDER_COLUMNS[key]
    desc = order_by.value.startswith("-")
    ordered = stmt.order_by(column.desc() if desc else column.asc(), DagRun.id.desc() if desc else DagRun.id.asc())
    with get_db(request).read_session() as session:
        get_dag(session, dag_id)
        runs = list(session.scalars(pg.apply(ordered)))
        return schemas.DAGRunCollection(dag_runs=[run_out(r) for r in runs], total_entries=count(session, stmt))


@router.post(
    "/dags/{dag_id}/dagRuns",
    response_model=schemas.DAGRun,
    dependencies=[OPERATOR],
    responses={
        404: {"description": "no such DAG"},
        409: {"description": "a run with this id or logical date exists"},
        400: {
            "description": "conf is not a JSON object, or a param (the DAG's default or conf's value) fails its "
            "JSON schema: the body's ``param`` names it and ``reason`` says why"
        },
        413: {"description": "the body is over api.max_request_bytes, or conf over api.max_conf_bytes"},
    },
)
def trigger_run(dag_id: str, body: schemas.TriggerDAGRun, request: Request) -> schemas.DAGRun | JSONResponse:
    """Create a manual, queued run (operator); the scheduler starts it. ``conf`` overrides the DAG's params.

    Every param is then validated against its JSON schema; a failure is a 400 with
    ``{"detail", "error": "ParamValidationError", "param": <name>, "reason": <why>}`` and no run.

    ``conf`` may be at most ``api.max_conf_bytes`` of compact JSON (413 beyond, the limit in the message).
    """
    try:
        schemas.check_json_value(body.conf)
    except ValueError as exc:
        raise DagRunConfError(f"conf: {exc}") from None
    try:
        with get_db(request).session() as session:
            run = trigger_dag(
                session,
                dag_id,
                conf=body.conf,
                logical_date=body.logical_date,
                run_id=body.dag_run_id,
                now=datetime.now(UTC),
                max_conf_bytes=request.app.state.settings.get_int("api", "max_conf_bytes"),
                allowed_run_id_pattern=request.app.state.settings.get_str("scheduler", "allowed_run_id_pattern"),
            )
            return run_out(run)
    except ParamValidationError as exc:  # the session rolled back: no run
        return JSONResponse(
            {"detail": str(exc), "error": type(exc).__name__, "param": exc.param, "reason": exc.reason},
            status_code=exc.http_status,
        )


@router.get(
    "/dags/{dag_id}/dagRuns/{dag_run_id}", response_model=schemas.DAGRun, dependencies=[VIEWER], responses=NOT_FOUND
)
def get_one_run(dag_id: str, dag_run_id: str, request: Request) -> schemas.DAGRun:
    """One DAG run."""
    with get_db(request).read_session() as session:
        return run_out(get_run(session, dag_id, dag_run_id))


@router.patch(
    "/dags/{dag_id}/dagRuns/{dag_run_id}", response_model=schemas.DAGRun, dependencies=[OPERATOR], responses=NOT_FOUND
)
def patch_run(dag_id: str, dag_run_id: str, body: schemas.DAGRunPatch, request: Request) -> schemas.DAGRun:
    """Mark a run success (its unfinished task instances too) or failed (running ones failed, the other
    unfinished ones skipped), as Airflow does (operator). Running tries are stopped by their supervisors."""
    with get_db(request).session() as session:
        run = get_run(session, dag_id, dag_run_id)
        mark_dag_run(session, run, body.state, now=datetime.now(UTC))
        return run_out(get_run(session, dag_id, dag_run_id))


__all__ = ["get_run", "router", "run_out"]
