"""Task instances of a DAG run: list, get, mark; clearing a run or some of its task instances."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.api.routes.dag_runs import get_run
from headrace.db.models import DagRun, TaskInstance, TaskTry
from headrace.exceptions import TaskNotFound
from headrace.scheduler.user_actions import ClearResult, clear_task_instances, mark_task_instances
from headrace.states import TaskInstanceState

router = APIRouter(tags=["TaskInstance"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
NOT_FOUND = not_found("no such DAG, DAG run or task instance")
RUN_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}"


def _with_latest_try() -> Select[TaskInstance, TaskTry]:
    return select(TaskInstance, TaskTry).outerjoin(
        TaskTry, and_(TaskTry.task_instance_id == TaskInstance.id, TaskTry.try_number == TaskInstance.try_number)
    )


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds, or None if either is missing."""
    return None if start is None or end is None else (end - start).total_seconds()


def ti_out(ti: TaskInstance, latest: TaskTry | None) -> schemas.TaskInstance:
    """The API form of a task instance and its latest try."""
    return schemas.TaskInstance(
        dag_id=ti.dag_id,
        dag_run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        rendered_map_index=ti.rendered_map_index,
        state=ti.state,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        start_date=ti.start_date,
        end_date=ti.end_date,
        duration=seconds_between(ti.start_date, ti.end_date),
        end_reason=ti.end_reason,
        pool=ti.pool,
        queue=ti.queue,
        priority_weight=ti.priority_weight,
        queued_at=ti.queued_at,
        next_retry_at=ti.next_retry_at,
        hostname=latest.hostname if latest else None,
        pid=latest.pid if latest else None,
        peak_rss_bytes=latest.peak_rss_bytes if latest else None,
        cpu_seconds=latest.cpu_seconds if latest else None,
    )


def tis_out(session: Session, ti_ids: Sequence[int]) -> list[schemas.TaskInstance]:
    """Task instances by id (as they are now in this session), sorted by task_id."""
    if not ti_ids:
        return []
    stmt = (
        _with_latest_try()
        .where(TaskInstance.id.in_(list(ti_ids)))
        .order_by(TaskInstance.task_id, TaskInstance.map_index)
    )
    return [ti_out(ti, tt) for ti, tt in session.execute(stmt.execution_options(populate_existing=True))]


def get_ti(
    session: Session, dag_id: str, dag_run_id: str, task_id: str, map_index: int = -1
) -> tuple[DagRun, TaskInstance]:
    """The run and its task instance ``task_id`` at ``map_index`` (-1: not mapped); raises ``DagNotFound`` /
    ``DagRunNotFound`` / ``TaskNotFound`` (for a mapped task asked without its map index: saying so)."""
    run = get_run(session, dag_id, dag_run_id)
    found = session.scalars(
        select(TaskInstance)
        .where(TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id)
        .order_by(TaskInstance.map_index)
        .execution_options(populate_existing=True)
    ).all()
    ti = next((t for t in found if t.map_index == map_index), None)
    if ti is None:
        where = f" at map index {map_index}" if map_index >= 0 else ""
        mapped = (
            f"; task {task_id!r} is mapped ({len(found)} task instances): add the map index to the URL"
            if found and map_index < 0
            else ""
        )
        raise TaskNotFound(
            f"DAG run {dag_run_id!r} of {dag_id!r} has no task instance {task_id!r}{where}{mapped}",
            dag_id=dag_id,
            run_id=dag_run_id,
            task_id=task_id,
        )
    return run, ti


MapIndex = Annotated[int, Query(ge=-1, le=1_000_000, description="The map index of a mapped task instance.")]
"""``?map_index=`` of the routes under a task instance (-1, the default: a task that is not mapped)."""

StateFilter = Annotated[list[TaskInstanceState] | None, Query(description="Only these states.")]
"""``?state=`` of the list routes (repeatable); None: every state."""


def _collection(
    session: Session, stmt: Select[TaskInstance, TaskTry], pg: Page, state: StateFilter, *order: Any
) -> schemas.TaskInstanceCollection:
    """One page of ``stmt``'s task instances (with their latest try) in ``order``, only those in ``state`` when
    given; ``total_entries`` counts every page."""
    if state:
        stmt = stmt.where(TaskInstance.state.in_([s.value for s in state]))
    rows = session.execute(pg.apply(stmt.order_by(*order)))
    out = [ti_out(ti, tt) for ti, tt in rows]
    return schemas.TaskInstanceCollection(task_instances=out, total_entries=count(session, stmt))


@router.get(
    f"{RUN_PATH}/taskInstances",
    response_model=schemas.TaskInstanceCollection,
    dependencies=[VIEWER],
    responses=NOT_FOUND,
)
def list_tis(
    dag_id: str, dag_run_id: str, request: Request, pg: Annotated[Page, Depends(page)], state: StateFilter = None
) -> schemas.TaskInstanceCollection:
    """The task instances of a run, sorted by task_id and map index, with their latest try's host, pid, peak RSS
    and CPU (a mapped task has one per map index)."""
    with get_db(request).read_session() as session:
        run = get_run(session, dag_id, dag_run_id)
        stmt = _with_latest_try().where(TaskInstance.dag_run_id == run.id)
        return _collection(session, stmt, pg, state, TaskInstance.task_id, TaskInstance.map_index)


@router.get(
    f"{RUN_PATH}/taskInstances/{{task_id}}",
    response_model=schemas.TaskInstance,
    dependencies=[VIEWER],
    responses=NOT_FOUND,
)
def get_one_ti(dag_id: str, dag_run_id: str, task_id: str, request: Request) -> schemas.TaskInstance:
    """One task instance."""
    with get_db(request).read_session() as session:
        _, ti = get_ti(session, dag_id, dag_run_id, task_id)
        return tis_out(session, [ti.id])[0]


@router.get(
    f"{RUN_PATH}/taskInstances/{{task_id}}/listMapped",
    response_model=schemas.TaskInstanceCollection,
    dependencies=[VIEWER],
    responses=NOT_FOUND,
)
def list_mapped_tis(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    request: Request,
    pg: Annotated[Page, Depends(page)],
    state: StateFilter = None,
) -> schemas.TaskInstanceCollection:
    """The task instances of a mapped task in a run, by map index (Airflow's ``listMapped``)."""
    with get_db(request).read_session() as session:
        run = get_run(session, dag_id, dag_run_id)
        stmt = _with_latest_try().where(
            TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id, TaskInstance.map_index >= 0
        )
        out = _collection(session, stmt, pg, state, TaskInstance.map_index)
        if out.total_entries == 0 and not state:
            get_ti(session, dag_id, dag_run_id, task_id)  # 404 for an unknown task; an unmapped one lists nothing
        return out


@router.get(
    f"{RUN_PATH}/taskInstances/{{task_id}}/{{map_index:int}}",
    response_model=schemas.TaskInstance,
    dependencies=[VIEWER],
    responses=NOT_FOUND,
)
def get_mapped_ti(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: Annotated[int, Path(ge=-1, le=1_000_000)],
    request: Request,
) -> schemas.TaskInstance:
    """One task instance of a mapped task, by map index."""
    with get_db(request).read_session() as session:
        _, ti = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        return tis_out(session, [ti.id])[0]


@router.patch(
    f"{RUN_PATH}/taskInstances/{{task_id}}",
    response_model=schemas.MarkedTaskInstances,
    dependencies=[OPERATOR],
    responses=NOT_FOUND,
)
def patch_ti(
    dag_id: str, dag_run_id: str, task_id: str, body: schemas.TaskInstancePatch, request: Request
) -> schemas.MarkedTaskInstances:
    """Mark a task instance success or failed (operator); returns it if it changed (dry run: if it would).

    Marking success also clears failed / upstream_failed task instances downstream so the run goes on; a
    finished run goes back to queued to be decided again. A running try is stopped by its supervisor.
    """
    with get_db(request).session() as session:
        run = get_run(session, dag_id, dag_run_id)  # a mapped task is marked at every map index
        changed = mark_task_instances(session, run, [task_id], body.state, dry_run=body.dry_run, now=datetime.now(UTC))
        return schemas.MarkedTaskInstances(task_instances=tis_out(session, changed))


@router.patch(
    f"{RUN_PATH}/taskInstances/{{task_id}}/{{map_index:int}}",
    response_model=schemas.MarkedTaskInstances,
    dependencies=[OPERATOR],
    responses=NOT_FOUND,
)
def patch_mapped_ti(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: Annotated[int, Path(ge=0, le=1_000_000)],
    body: schemas.TaskInstancePatch,
    request: Request,
) -> schemas.MarkedTaskInstances:
    """Mark one task instance of a mapped task success or failed (operator); as ``PATCH …/{task_id}``."""
    with get_db(request).session() as session:
        run, _ = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        changed = mark_task_instances(
            session, run, [task_id], body.state, dry_run=body.dry_run, now=datetime.now(UTC), map_indexes=[map_index]
        )
        return schemas.MarkedTaskInstances(task_instances=tis_out(session, changed))


def _cleared(session: Session, result: ClearResult, run: DagRun) -> schemas.ClearedTaskInstances:
    return schemas.ClearedTaskInstances(
        task_instances=tis_out(session, result.cleared),
        not_cleared=[
            schemas.NotCleared(
                task_id=n.task_id,
                state=n.state,
                reason=n.reason,
                dag_id=n.dag_id or run.dag_id,
                dag_run_id=n.run_id or run.run_id,
            )
            for n in result.not_cleared
        ],
    )


@router.post(
    f"{RUN_PATH}/clear", response_model=schemas.ClearedTaskInstances, dependencies=[OPERATOR], responses=NOT_FOUND
)
def clear_run(
    dag_id: str, dag_run_id: str, body: schemas.ClearDAGRun, request: Request
) -> schemas.ClearedTaskInstances:
    """Clear the run's task instances (``only_failed``: the failed / upstream_failed ones) so they run again
    (operator); the run goes back to queued. Queued / running ones are left and listed in ``not_cleared``."""
    with get_db(request).session() as session:
        run = get_run(session, dag_id, dag_run_id)
        result = clear_task_instances(
            session, run, None, only_failed=body.only_failed, dry_run=body.dry_run, now=datetime.now(UTC)
        )
        return _cleared(session, result, run)


@router.post(
    "/dags/{dag_id}/clearTaskInstances",
    response_model=schemas.ClearedTaskInstances,
    dependencies=[OPERATOR],
    responses=NOT_FOUND,
)
def clear_tis(dag_id: str, body: schemas.ClearTaskInstances, request: Request) -> schemas.ClearedTaskInstances:
    """Clear some task instances of one run (operator), with their upstream / downstream tasks if asked, and
    the tasks of other DAGs that ExternalTaskMarkers among them mark (recursively; 400 past ``recursion_depth``).

    ``task_ids`` items are task ids (every map index of a mapped task) or ``[task_id, map_index]``.
    """
    names: list[str] | None = None
    indexes: dict[str, set[int]] = {}
    if body.task_ids is not None:
        names = []
        for item in body.task_ids:
            name = item if isinstance(item, str) else item[0]
            names.append(name)
            if not isinstance(item, str):
                indexes.setdefault(name, set()).add(item[1])
    with get_db(request).session() as session:
        run = get_run(session, dag_id, body.dag_run_id)
        result = clear_task_instances(
            session,
            run,
            sorted(set(names)) if names is not None else None,
            map_indexes=indexes or None,
            include_upstream=body.include_upstream,
            include_downstream=body.include_downstream,
            only_failed=body.only_failed,
            dry_run=body.dry_run,
            now=datetime.now(UTC),
        )
        return _cleared(session, result, run)


__all__ = ["MapIndex", "get_ti", "router", "seconds_between", "ti_out", "tis_out"]
