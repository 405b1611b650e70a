"""Compact JSON for the UI's heavy views, under ``/ui/data`` (role viewer).

The REST API returns one object per DAG run or task instance; a grid of 1,000
tasks × 100 runs would be 100,000 objects. These endpoints answer the same
questions in one query per table and a compact shape:

* ``GET /ui/data/dags/{dag_id}/grid`` — task ids once (topological order), runs
  once (oldest first), and per run a string with one state code per task
  (:data:`STATE_CODES`).
* ``GET /ui/data/dags/{dag_id}/graph?run_id=`` — nodes and edges of the DAG's
  current version and the selected run's task states.
* ``GET /ui/data/recent_runs`` — the last few run states of every DAG (DAG list).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from headrace.api.auth import get_db, require
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance
from headrace.exceptions import DagNotFound, DagRunNotFound
from headrace.states import DagRunState, TaskInstanceState

router = APIRouter(prefix="/ui/data", tags=["ui"], dependencies=[Depends(require("viewer"))])

STATE_CODES: dict[str, str] = {
    "-": "",  # no task instance: the task did not exist in that run's DAG version
    "n": TaskInstanceState.NONE.value,
    "s": TaskInstanceState.SCHEDULED.value,
    "q": TaskInstanceState.QUEUED.value,
    "r": TaskInstanceState.RUNNING.value,
    "S": TaskInstanceState.SUCCESS.value,
    "F": TaskInstanceState.FAILED.value,
    "R": TaskInstanceState.UP_FOR_RETRY.value,
    "U": TaskInstanceState.UPSTREAM_FAILED.value,
    "K": TaskInstanceState.SKIPPED.value,
}
"""One character per task instance state in the grid's per-run strings."""

_CODE_OF = {state: code for code, state in STATE_CODES.items() if state}
_SEP = "\x1f"  # ASCII unit separator: cannot appear in a task id (letters, digits, _ - .)
_RUN_FINISHED = frozenset({DagRunState.SUCCESS.value, DagRunState.FAILED.value})


class GridRun(BaseModel):
    """One column of the grid."""

    run_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None


class Grid(BaseModel):
    """Runs × tasks. ``states[i][j]`` is the code (:data:`STATE_CODES`) of ``task_ids[j]`` in ``runs[i]``."""

    dag_id: str
    task_ids: list[str]
    """Current version's tasks in topological order, then tasks only older runs have."""
    runs: list[GridRun]
    """Oldest first."""
    states: list[str]
    codes: dict[str, str]
    total_runs: int
    unfinished: bool
    """True while a shown run or task instance can still change (the page keeps polling)."""


class GraphNode(BaseModel):
    """A task of the graph."""

    id: str
    operator: str


class Graph(BaseModel):
    """The DAG's current version and one run's task states (``{}`` without runs)."""

    dag_id: str
    nodes: list[GraphNode]
    edges: list[tuple[str, str]]
    """(upstream, downstream) task ids."""
    run: GridRun | None
    states: dict[str, str]
    """task_id → task instance state in ``run``."""
    runs: list[GridRun]
    """The newest runs (newest first), for the run selector."""
    unfinished: bool


def topological_order(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Task ids of a serialized DAG's ``tasks`` so every task follows its upstream ones (ties by id)."""
    indegree = {tid: len(t.get("upstream_task_ids", ())) for tid, t in tasks.items()}
    ready = deque(sorted(tid for tid, n in indegree.items() if n == 0))
    order: list[str] = []
    while ready:
        tid = ready.popleft()
        order.append(tid)
        for down in sorted(tasks[tid].get("downstream_task_ids", ())):
            if down in indegree:
                indegree[down] -= 1
                if indegree[down] == 0:
                    ready.append(down)
    if len(order) < len(tasks):  # a cycle cannot be serialized, but never lose a task
        seen = set(order)
        order += sorted(t for t in tasks if t not in seen)
    return order


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


def _grid_run(row: Any) -> GridRun:
    return GridRun(run_id=row.run_id, state=row.state, run_type=row.run_type, logical_date=row.logical_date,
                   start_date=row.start_date, end_date=row.end_date)


_RUN_COLUMNS = (DagRun.id, DagRun.run_id, DagRun.state, DagRun.run_type, DagRun.logical_date, DagRun.start_date,
                DagRun.end_date)


def _newest_runs(session: Session, dag_id: str, limit: int, offset: int = 0) -> list[Any]:
    return list(session.execute(
        select(*_RUN_COLUMNS).where(DagRun.dag_id == dag_id)
        .order_by(DagRun.logical_date.desc().nulls_last(), DagRun.id.desc()).limit(limit).offset(offset)
    ).all())


@router.get("/dags/{dag_id}/grid", response_model=Grid)
def grid(request: Request, dag_id: str, num_runs: Annotated[int, Query(ge=1, le=500)] = 25,
         offset: Annotated[int, Query(ge=0)] = 0) -> Grid:
    """The newest ``num_runs`` runs (skipping ``offset`` newer ones) × all tasks, compactly.

    Raises ``DagNotFound`` (404). Three queries: the DAG's version, its runs, their task instances.
    """
    with get_db(request).read_session() as session:
        tasks = current_tasks(session, dag_id)
        runs = _newest_runs(session, dag_id, num_runs, offset)[::-1]
        total = session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id == dag_id)) or 0
        task_ids = topological_order(tasks)
        index = {tid: i for i, tid in enumerate(task_ids)}
        column = {row.id: i for i, row in enumerate(runs)}
        cells = [["-"] * len(task_ids) for _ in runs]
        unfinished = any(r.state not in _RUN_FINISHED for r in runs)
        if runs:
            # One row per run: "code<task_id>\x1f…", built by the database (group_concat / string_agg),
            # so Python handles 100 strings instead of 100,000 row tuples.
            code = case(_CODE_OF, value=TaskInstance.state, else_="n")
            rows = session.execute(
                select(TaskInstance.dag_run_id, func.aggregate_strings(code + TaskInstance.task_id, _SEP))
                .where(TaskInstance.dag_run_id.in_(list(column))).group_by(TaskInstance.dag_run_id)
            ).all()
            for run_pk, packed in rows:
                line = cells[column[run_pk]]
                for item in packed.split(_SEP):
                    task_id = item[1:]
                    j = index.get(task_id)
                    if j is None:  # a task only older versions had: add a row for it
                        j = index[task_id] = len(task_ids)
                        task_ids.append(task_id)
                        for other in cells:
                            other.append("-")
                    line[j] = item[0]
    return Grid(dag_id=dag_id, task_ids=task_ids, runs=[_grid_run(r) for r in runs],
                states=["".join(line) for line in cells], codes=STATE_CODES, total_runs=total,
                unfinished=unfinished)


@router.get("/dags/{dag_id}/graph", response_model=Graph)
def graph(request: Request, dag_id: str, run_id: str | None = None) -> Graph:
    """Nodes and edges of the DAG and the task states of ``run_id`` (default: the newest run).

    Raises ``DagNotFound`` or ``DagRunNotFound`` (404).
    """
    with get_db(request).read_session() as session:
        tasks = current_tasks(session, dag_id)
        recent = _newest_runs(session, dag_id, 25)
        selected: Any = None
        if run_id is not None:
            selected = next((r for r in recent if r.run_id == run_id), None) or session.execute(
                select(*_RUN_COLUMNS).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
            if selected is None:
                raise DagRunNotFound(f"DAG {dag_id!r} has no run {run_id!r}", dag_id=dag_id, run_id=run_id)
        elif recent:
            selected = recent[0]
        states: dict[str, str] = {}
        if selected is not None:
            states = {task_id: state for task_id, state in session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == selected.id))}
    nodes = [GraphNode(id=tid, operator=str(tasks[tid].get("operator", ""))) for tid in topological_order(tasks)]
    edges = [(tid, down) for tid in sorted(tasks) for down in sorted(tasks[tid].get("downstream_task_ids", ()))]
    unfinished = selected is not None and selected.state not in _RUN_FINISHED
    return Graph(dag_id=dag_id, nodes=nodes, edges=edges, run=_grid_run(selected) if selected is not None else None,
                 states=states, runs=[_grid_run(r) for r in recent], unfinished=unfinished)


class RecentRuns(BaseModel):
    """``dag_id`` → its newest runs as ``[run_id, state]``, newest last."""

    recent_runs: dict[str, list[tuple[str, str]]]


@router.get("/recent_runs", response_model=RecentRuns)
def recent_runs(request: Request, limit: Annotated[int, Query(ge=1, le=50)] = 10) -> RecentRuns:
    """The newest ``limit`` runs of every DAG, in one query (a window function)."""
    ranked = select(
        DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.id,
        func.row_number().over(partition_by=DagRun.dag_id,
                               order_by=(DagRun.logical_date.desc().nulls_last(), DagRun.id.desc())).label("rn"),
    ).subquery()
    with get_db(request).read_session() as session:
        rows = session.execute(
            select(ranked.c.dag_id, ranked.c.run_id, ranked.c.state).where(ranked.c.rn <= limit)
            .order_by(ranked.c.dag_id, ranked.c.rn.desc())
        ).all()
    out: dict[str, list[tuple[str, str]]] = {}
    for dag_id, run_id, state in rows:
        out.setdefault(dag_id, []).append((run_id, state))
    return RecentRuns(recent_runs=out)


__all__ = ["STATE_CODES", "Graph", "Grid", "current_serialized", "current_tasks", "router", "topological_order"]
