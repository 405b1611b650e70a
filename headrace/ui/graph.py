"""The graph of a DAG (``GET /dags/{dag_id}/graph?run_id=``): laid out by dagre, nodes coloured by state, live.

Its data, ``GET /ui/data/dags/{dag_id}/graph?run_id=``, is the nodes and edges of
the DAG's current version and the selected run's task states (``static/graph.js``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select

from headrace.api.auth import get_db, require
from headrace.db.models import DagRun, TaskInstance
from headrace.exceptions import DagRunNotFound
from headrace.ui.groups import UiGroup, aggregate_state, edge_labels, ui_groups
from headrace.ui.queries import (
    RUN_COLUMNS,
    RUN_FINISHED,
    GridRun,
    current_serialized,
    grid_run,
    newest_runs,
    topological_order,
)
from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/ui/data", tags=["ui"], dependencies=[Depends(require("viewer"))])


@router.get("/dags/{dag_id}/graph")
def graph_page(request: Request, dag_id: str, run_id: str | None = None) -> Response:
    """The DAG laid out by dagre, nodes coloured by the selected run's task states, live."""
    if session_principal(request) is None:
        return login_redirect(request)
    return page(
        request, "graph.html", title=f"{dag_id} · graph", tab="graph", run_id=run_id, **dag_context(request, dag_id)
    )


class GraphNode(BaseModel):
    """A task of the graph."""

    id: str
    operator: str
    role: str | None = None
    """``setup`` or ``teardown`` for those tasks (drawn with Airflow's ↗ / ↘ marks), else None."""
    mapped: bool = False
    """True for a mapped task (``.expand()``, or a task in a mapped task group): drawn with ``[N]``."""


class GraphAsset(BaseModel):
    """An asset drawn on the graph: one the DAG is scheduled on, or a task's outlet or inlet."""

    id: str
    """``asset:<uri>`` (never a task id: task ids have no ``:``)."""
    name: str
    uri: str


class Graph(BaseModel):
    """The DAG's current version and one run's task states (``{}`` without runs)."""

    dag_id: str
    nodes: list[GraphNode]
    edges: list[tuple[str, str]]
    """(upstream, downstream) task ids."""
    run: GridRun | None
    states: dict[str, str]
    """task_id → task instance state in ``run``; for a mapped task, the aggregate state of its task instances
    (the one that decides first, as for a group: a failed index makes the node failed)."""
    mapped_counts: dict[str, int] = {}
    """task_id → number of task instances of a mapped task in ``run`` (absent before it is expanded)."""
    runs: list[GridRun]
    """The newest runs (newest first), for the run selector."""
    unfinished: bool
    groups: list[UiGroup] = []
    """Task groups (parents first), which the page draws collapsed or expanded; ``[]`` without groups."""
    group_states: dict[str, str] = {}
    """group_id → aggregate state of its task instances in ``run`` (groups without any are absent)."""
    labels: list[tuple[str, str, str]] = []
    """(upstream, downstream, label) of the labelled edges (``Label``)."""
    assets: list[GraphAsset] = []
    """Assets the DAG is scheduled on and its tasks' outlets and inlets; ``[]`` without any."""
    asset_edges: list[tuple[str, str]] = []
    """(from, to): a schedule asset to each root task, an inlet to its task, a task to its outlet."""


@data_router.get("/dags/{dag_id}/graph", response_model=Graph)
def graph(request: Request, dag_id: str, run_id: str | None = None) -> Graph:
    """Nodes and edges of the DAG and the task states of ``run_id`` (default: the newest run).

    Raises ``DagNotFound`` or ``DagRunNotFound`` (404).
    """
    with get_db(request).read_session() as session:
        serialized = current_serialized(session, dag_id)
        tasks: dict[str, Any] = serialized["tasks"]
        recent = newest_runs(session, dag_id, 25)
        selected: Any = None
        if run_id is not None:
            selected = (
                next((r for r in recent if r.run_id == run_id), None)
                or session.execute(select(*RUN_COLUMNS).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
            )
            if selected is None:
                raise DagRunNotFound(f"DAG {dag_id!r} has no run {run_id!r}", dag_id=dag_id, run_id=run_id)
        elif recent:
            selected = recent[0]
        by_task: dict[str, list[str]] = {}
        mapped_counts: dict[str, int] = {}
        if selected is not None:
            for task_id, ti_state, map_index in session.execute(
                select(TaskInstance.task_id, TaskInstance.state, TaskInstance.map_index).where(
                    TaskInstance.dag_run_id == selected.id
                )
            ):
                by_task.setdefault(task_id, []).append(ti_state)
                if map_index >= 0:
                    mapped_counts[task_id] = mapped_counts.get(task_id, 0) + 1
        states = {task_id: agg for task_id, found in by_task.items() if (agg := aggregate_state(found)) is not None}
    nodes = [
        GraphNode(
            id=tid,
            operator=str(tasks[tid].get("operator", "")),
            role=_role(tasks[tid]),
            mapped=tasks[tid].get("expand_input") is not None or tasks[tid].get("mapped_group") is not None,
        )
        for tid in topological_order(tasks)
    ]
    edges = [(tid, down) for tid in sorted(tasks) for down in sorted(tasks[tid].get("downstream_task_ids", ()))]
    unfinished = selected is not None and selected.state not in RUN_FINISHED
    groups = ui_groups(serialized)
    group_states = {
        g.id: state
        for g in groups
        if (state := aggregate_state(states[t] for t in g.task_ids if t in states)) is not None
    }
    return Graph(
        dag_id=dag_id,
        nodes=nodes,
        edges=edges,
        run=grid_run(selected) if selected is not None else None,
        states=states,
        mapped_counts=mapped_counts,
        runs=[grid_run(r) for r in recent],
        unfinished=unfinished,
        groups=groups,
        group_states=group_states,
        labels=edge_labels(serialized),
        **graph_assets(serialized),
    )


def graph_assets(serialized: dict[str, Any]) -> dict[str, Any]:
    """``assets`` and ``asset_edges`` of :class:`Graph` from a serialized DAG (its timetable's asset condition
    and its tasks' ``outlets`` / ``inlets``)."""
    found: dict[str, GraphAsset] = {}
    edges: list[tuple[str, str]] = []

    def node(data: dict[str, Any]) -> str | None:
        if data.get("__type") != "asset":
            return None
        key = f"asset:{data['uri']}"
        found.setdefault(key, GraphAsset(id=key, name=str(data["name"]), uri=str(data["uri"])))
        return key

    def walk(data: dict[str, Any]) -> list[str]:
        if data.get("__type") in ("asset_all", "asset_any"):
            return [k for o in data.get("objects", ()) for k in walk(o)]
        key = node(data)
        return [key] if key else []

    tasks: dict[str, Any] = serialized.get("tasks", {})
    condition = (serialized.get("timetable") or {}).get("__var", {}).get("asset_condition")
    if isinstance(condition, dict):
        roots = [t for t, d in sorted(tasks.items()) if not d.get("upstream_task_ids")]
        edges += [(key, root) for key in dict.fromkeys(walk(condition)) for root in roots]
    for task_id, task in sorted(tasks.items()):
        edges += [(key, task_id) for d in task.get("inlets", ()) if (key := node(d))]
        edges += [(task_id, key) for d in task.get("outlets", ()) if (key := node(d))]
    return {"assets": list(found.values()), "asset_edges": list(dict.fromkeys(edges))}


def _role(task: dict[str, Any]) -> str | None:
    return "setup" if task.get("is_setup") else "teardown" if task.get("is_teardown") else None


__all__ = ["Graph", "GraphAsset", "GraphNode", "data_router", "graph", "graph_assets", "router"]
