"""Reads shared by the UI's pages and their data: a DAG's current serialized version, task order, DAG runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring import graph
from headrace.db.models import DagModel, DagRun, DagVersion
from headrace.exceptions import DagNotFound, DagRunNotFound
from headrace.states import DagRunState

RUN_FINISHED = frozenset({DagRunState.SUCCESS.value, DagRunState.FAILED.value})
"""DAG run states that no longer change (a page showing only these stops polling)."""


class GridRun(BaseModel):
    """One DAG run as the grid and graph show it."""

    run_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None


RUN_COLUMNS = (
    DagRun.id,
    DagRun.run_id,
    DagRun.state,
    DagRun.run_type,
    DagRun.logical_date,
    DagRun.start_date,
    DagRun.end_date,
)
"""The columns :func:`grid_run` reads (plus the primary key)."""


def grid_run(row: Any) -> GridRun:
    """A :class:`GridRun` from a row of :data:`RUN_COLUMNS`."""
    return GridRun(
        run_id=row.run_id,
        state=row.state,
        run_type=row.run_type,
        logical_date=row.logical_date,
        start_date=row.start_date,
        end_date=row.end_date,
    )


def newest_runs(session: Session, dag_id: str, limit: int, offset: int = 0) -> list[Any]:
    """Rows of :data:`RUN_COLUMNS` of the DAG's newest runs (by logical date), newest first."""
    return list(
        session.execute(
            select(*RUN_COLUMNS)
            .where(DagRun.dag_id == dag_id)
            .order_by(DagRun.logical_date.desc().nulls_last(), DagRun.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    )


def topological_order(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Task ids of a serialized DAG's ``tasks`` so every task follows its upstream ones (ties by id)."""
    return graph.topological_order({tid: tasks[tid].get("downstream_task_ids", ()) for tid in sorted(tasks)})


def current_serialized(session: Session, dag_id: str) -> dict[str, Any]:
    """The serialized DAG (``serialize_dag`` output) of the DAG's current version; raises ``DagNotFound``."""
    row = session.execute(
        select(DagVersion.serialized)
        .join(DagModel, (DagModel.dag_id == DagVersion.dag_id) & (DagModel.version_hash == DagVersion.version_hash))
        .where(DagModel.dag_id == dag_id)
    ).first()
    if row is None:
        raise DagNotFound(f"no DAG {dag_id!r}; see GET /api/v1/dags", dag_id=dag_id)
    serialized: dict[str, Any] = row[0]
    return serialized


def current_tasks(session: Session, dag_id: str) -> dict[str, Any]:
    """The serialized ``tasks`` of the DAG's current version; raises ``DagNotFound``."""
    tasks: dict[str, Any] = current_serialized(session, dag_id)["tasks"]
    return tasks


def get_run(session: Session, dag_id: str, run_id: str) -> DagRun:
    """DAG run ``run_id`` of ``dag_id``; raises ``DagNotFound`` / ``DagRunNotFound`` (404)."""
    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
    if run is None:
        if session.get(DagModel, dag_id) is None:
            raise DagNotFound(f"DAG {dag_id!r} not found")
        raise DagRunNotFound(f"DAG run {run_id!r} of DAG {dag_id!r} not found")
    return run


def run_tasks(session: Session, run: DagRun) -> dict[str, Any]:
    """The serialized ``tasks`` of the DAG version DAG run ``run`` uses (``{}`` if that version is gone)."""
    version = session.get(DagVersion, run.dag_version_id)
    tasks: dict[str, Any] = version.serialized.get("tasks", {}) if version is not None else {}
    return tasks


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 in UTC, or ``None``."""
    return None if value is None else value.astimezone(UTC).isoformat()


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds (3 decimals), or ``None`` if either is missing."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


__all__ = [
    "RUN_COLUMNS",
    "RUN_FINISHED",
    "GridRun",
    "current_serialized",
    "current_tasks",
    "get_run",
    "grid_run",
    "iso",
    "newest_runs",
    "run_tasks",
    "seconds",
    "topological_order",
]
