"""``/api/v1/dags``: list, get, pause/unpause, source code and tasks of DAGs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, page
from headrace.dagfiles.serialization import SerializedDag
from headrace.db import queries
from headrace.db.models import DagModel, DagWarning
from headrace.exceptions import DagNotFound, NotFound
from headrace.scheduler.user_actions import set_paused

router = APIRouter(tags=["DAG"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))

NOT_FOUND = not_found("no such DAG")


def get_dag(session: Session, dag_id: str) -> DagModel:
    """The ``dag`` row of ``dag_id``; raises ``DagNotFound`` (404)."""
    dag = session.get(DagModel, dag_id)
    if dag is None:
        raise DagNotFound(f"DAG {dag_id!r} not found", dag_id=dag_id)
    return dag


def current_dag(session: Session, dag_id: str) -> SerializedDag:
    """The current serialized version of ``dag_id``; raises ``DagNotFound`` (404)."""
    dag = get_dag(session, dag_id)
    version = queries.current_version(session, dag)
    if version is None:
        raise DagNotFound(f"DAG {dag_id!r} has no stored version", dag_id=dag_id)
    return SerializedDag.from_dict(version.serialized)


_DAG_COLUMNS = [name for name in schemas.DAG.model_fields if name not in ("warnings", "dag_display_name")]


def dag_out(dag: DagModel, warnings: Sequence[DagWarning] = ()) -> schemas.DAG:
    """The API form of a ``dag`` row with its ``dag_warning`` rows (``queries.dag_warnings``)."""
    return schemas.DAG(
        **{name: getattr(dag, name) for name in _DAG_COLUMNS},
        dag_display_name=dag.dag_display_name or dag.dag_id,
        warnings=[schemas.DAGWarningNote.model_validate(w) for w in warnings],
    )


def one_dag_out(session: Session, dag: DagModel) -> schemas.DAG:
    """:func:`dag_out` of one DAG, its warnings read here."""
    return dag_out(dag, queries.dag_warnings(session, [dag.dag_id]).get(dag.dag_id, ()))


@router.get("/dags", response_model=schemas.DAGCollection, dependencies=[VIEWER])
def list_dags(
    request: Request,
    pg: Annotated[Page, Depends(page)],
    paused: Annotated[bool | None, Query(description="Only paused (true) or unpaused (false) DAGs.")] = None,
    tags: Annotated[list[str] | None, Query(description="Only DAGs with one of these tags.")] = None,
    dag_id_pattern: Annotated[str | None, Query(max_length=250, description="Substring of the dag_id.")] = None,
    only_active: Annotated[bool, Query(description="Leave out DAGs whose file no longer defines them.")] = True,
) -> schemas.DAGCollection:
    """DAGs sorted by dag_id, filtered."""
    stmt = select(DagModel).order_by(DagModel.dag_id)
    if paused is not None:
        stmt = stmt.where(DagModel.is_paused.is_(paused))
    if only_active:
        stmt = stmt.where(DagModel.is_active.is_(True))
    if dag_id_pattern:
        stmt = stmt.where(func.lower(DagModel.dag_id).contains(dag_id_pattern.lower(), autoescape=True))
    with get_db(request).read_session() as session:
        dags = list(session.scalars(stmt))
        if tags:
            wanted = set(tags)
            dags = [d for d in dags if wanted & set(d.tags or ())]
        shown = pg.slice(dags)
        warnings = queries.dag_warnings(session, [d.dag_id for d in shown]) if shown else {}
        return schemas.DAGCollection(
            dags=[dag_out(d, warnings.get(d.dag_id, ())) for d in shown], total_entries=len(dags)
        )


@router.get("/dags/{dag_id}", response_model=schemas.DAG, dependencies=[VIEWER], responses=NOT_FOUND)
def get_one_dag(dag_id: str, request: Request) -> schemas.DAG:
    """One DAG, with its warnings."""
    with get_db(request).read_session() as session:
        return one_dag_out(session, get_dag(session, dag_id))


@router.patch("/dags/{dag_id}", response_model=schemas.DAG, dependencies=[OPERATOR], responses=NOT_FOUND)
def patch_dag(dag_id: str, body: schemas.DAGPatch, request: Request) -> schemas.DAG:
    """Pause or unpause a DAG (operator). A paused DAG gets no new scheduled runs and starts no queued ones."""
    with get_db(request).session() as session:
        get_dag(session, dag_id)  # the API's 404 for an unknown DAG
        dag = set_paused(session, dag_id, body.is_paused)  # wakes the scheduler, as the CLI's pause does
        return one_dag_out(session, dag)


@router.get("/dags/{dag_id}/source", response_model=schemas.DAGSource, dependencies=[VIEWER], responses=NOT_FOUND)
def dag_source(dag_id: str, request: Request) -> schemas.DAGSource:
    """The text of the DAG's file as it is on disk now. 404 if the file is gone."""
    with get_db(request).read_session() as session:
        fileloc = get_dag(session, dag_id).fileloc
    try:
        with open(fileloc, encoding="utf-8", errors="replace") as f:
            content = f.read()
    except OSError as exc:
        raise NotFound(f"the file of DAG {dag_id!r} cannot be read: {fileloc}: {exc.strerror}") from None
    return schemas.DAGSource(fileloc=fileloc, content=content)


def task_out(sdag: SerializedDag, task_id: str) -> schemas.Task:
    """The API form of one task of a serialized DAG."""
    t = sdag.tasks[task_id]
    return schemas.Task(
        task_id=t.task_id,
        operator=t.operator,
        upstream_task_ids=sorted(t.upstream_task_ids),
        downstream_task_ids=sorted(t.downstream_task_ids),
        trigger_rule=t.trigger_rule.value,
        retries=t.retries,
        retry_delay_seconds=t.retry_delay,
        retry_exponential_backoff=t.retry_exponential_backoff,
        max_retry_delay_seconds=t.max_retry_delay,
        pool=t.pool,
        pool_slots=t.pool_slots,
        queue=t.queue,
        priority_weight=t.priority_weight,
        weight_rule=t.weight_rule,
        depends_on_past=t.depends_on_past,
        wait_for_downstream=t.wait_for_downstream,
        is_setup=t.is_setup,
        is_teardown=t.is_teardown,
        memory_limit_bytes=t.memory_limit,
        execution_timeout_seconds=t.execution_timeout,
        owner=t.owner,
        doc_md=t.doc_md,
        is_mapped=t.expand_input is not None or t.mapped_group is not None,
        params={
            name: schemas.TaskParam(
                value=p.value if p.has_value else None,
                has_default=p.has_value,
                description=p.description,
                schema=p.schema,
            )
            for name, p in sdag.task_params(task_id).items_params()
        },
    )


@router.get("/dags/{dag_id}/tasks", response_model=schemas.TaskCollection, dependencies=[VIEWER], responses=NOT_FOUND)
def dag_tasks(dag_id: str, request: Request) -> schemas.TaskCollection:
    """The tasks of the DAG's current version, sorted by task_id."""
    with get_db(request).read_session() as session:
        sdag = current_dag(session, dag_id)
    tasks = [task_out(sdag, t) for t in sdag.task_ids]
    return schemas.TaskCollection(tasks=tasks, total_entries=len(tasks))


@router.get(
    "/dags/{dag_id}/tasks/{task_id}",
    response_model=schemas.Task,
    dependencies=[VIEWER],
    responses={404: {"description": "no such DAG or task"}},
)
def dag_task(dag_id: str, task_id: str, request: Request) -> schemas.Task:
    """One task of the DAG's current version."""
    with get_db(request).read_session() as session:
        sdag = current_dag(session, dag_id)
    sdag.get_task(task_id)
    return task_out(sdag, task_id)


__all__ = ["current_dag", "dag_out", "get_dag", "one_dag_out", "router", "task_out"]
