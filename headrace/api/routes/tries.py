"""``…/taskInstances/{task_id}/tries``: every try of a task instance, with the identity of its processes.

A try's ``error`` is what the task raised; stored secrets in it are masked (``***``) like in its log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, get_encryptor, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.api.routes.task_instances import MapIndex, get_ti, seconds_between
from headrace.db.models import TaskInstance, TaskTry
from headrace.exceptions import NotFound
from headrace.masking import SecretMasker, mask_or_none
from headrace.secrets_store import stored_secrets_masker

router = APIRouter(tags=["TaskInstance"], dependencies=[Depends(schemas.reject_nul_bytes), Depends(require("viewer"))])

TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"
NOT_FOUND = not_found("no such DAG, DAG run, task instance or try")
TryNumber = Annotated[int, Path(ge=1, le=schemas.INT32_MAX)]


def try_out(tt: TaskTry, masker: SecretMasker | None = None) -> schemas.TaskTry:
    """The API form of a ``task_try`` row; ``masker`` masks secrets in its ``error``."""
    return schemas.TaskTry(
        try_number=tt.try_number,
        state=tt.state,
        hostname=tt.hostname,
        supervisor_pid=tt.supervisor_pid,
        supervisor_start_time=tt.supervisor_start_time,
        pid=tt.pid,
        process_start_time=tt.process_start_time,
        start_date=tt.start_date,
        end_date=tt.end_date,
        duration=seconds_between(tt.start_date, tt.end_date),
        heartbeat_at=tt.heartbeat_at,
        exit_code=tt.exit_code,
        signal=tt.signal,
        peak_rss_bytes=tt.peak_rss_bytes,
        cpu_seconds=tt.cpu_seconds,
        containment=tt.containment,
        processes_left=tt.processes_left,
        processes_killed=tt.processes_killed,
        end_reason=tt.end_reason,
        error=mask_or_none(masker, tt.error) if masker is not None else tt.error,
    )


def get_try(session: Session, ti: TaskInstance, try_number: int) -> TaskTry:
    """The ``task_try`` row of try ``try_number`` of ``ti``; raises ``NotFound`` (404)."""
    tt = session.scalars(
        select(TaskTry)
        .where(TaskTry.task_instance_id == ti.id, TaskTry.try_number == try_number)
        .execution_options(populate_existing=True)
    ).first()
    if tt is None:
        raise NotFound(
            f"task instance {ti.task_id!r} of DAG run {ti.run_id!r} has no try {try_number}"
            f" (it has had {ti.try_number})"
        )
    return tt


def _masker(request: Request, session: Session) -> SecretMasker:
    return stored_secrets_masker(session, get_encryptor(request))


@router.get(f"{TI_PATH}/tries", response_model=schemas.TaskTryCollection, responses=NOT_FOUND)
def list_tries(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    request: Request,
    pg: Annotated[Page, Depends(page)],
    map_index: MapIndex = -1,
) -> schemas.TaskTryCollection:
    """The tries that started, oldest first: host, supervisor and task pids with their process start times
    (pid reuse proof), times, exit code or signal, peak RSS (bytes), CPU (seconds), end reason."""
    with get_db(request).read_session() as session:
        _, ti = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        stmt = select(TaskTry).where(TaskTry.task_instance_id == ti.id)
        rows = list(session.scalars(pg.apply(stmt.order_by(TaskTry.try_number))))
        masker = _masker(request, session)
        return schemas.TaskTryCollection(tries=[try_out(t, masker) for t in rows], total_entries=count(session, stmt))


@router.get(f"{TI_PATH}/tries/{{try_number}}", response_model=schemas.TaskTry, responses=NOT_FOUND)
def get_one_try(
    dag_id: str, dag_run_id: str, task_id: str, try_number: TryNumber, request: Request, map_index: MapIndex = -1
) -> schemas.TaskTry:
    """One try."""
    with get_db(request).read_session() as session:
        _, ti = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        return try_out(get_try(session, ti, try_number), _masker(request, session))


__all__ = ["TryNumber", "get_try", "router", "try_out"]
