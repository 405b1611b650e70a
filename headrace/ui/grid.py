"""The grid of a DAG (``GET /dags/{dag_id}/grid``): runs × tasks coloured by state, live; Trigger, Clear, Mark.

Its data, ``GET /ui/data/dags/{dag_id}/grid``, answers for 1,000 tasks × 100 runs
in three queries and a compact shape: task ids once (topological order), runs
once (oldest first), and per run a string with one state code per task
(:data:`STATE_CODES`). ``static/grid.js`` draws it on a canvas. A mapped task
has one cell per run too: the aggregate of its indices' states (as a task
group's), and ``mapped`` counts its indices by state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import String, case, cast, func, select

from headrace.api.auth import get_db, require
from headrace.db.models import DagRun, TaskInstance
from headrace.states import TaskInstanceState
from headrace.ui.groups import GridRow, UiGroup, aggregate_state, grid_rows, ui_groups
from headrace.ui.queries import RUN_FINISHED, GridRun, current_serialized, grid_run, newest_runs, topological_order
from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/ui/data", tags=["ui"], dependencies=[Depends(require("viewer"))])

STATE_CODES: dict[str, str] = {
    "-": "",  # no task instance: the task did not exist in that run's DAG version
    "n": TaskInstanceState.NONE.value,
    "s": TaskInstanceState.SCHEDULED.value,
    "q": TaskInstanceState.QUEUED.value,
    "r": TaskInstanceState.RUNNING.value,
    "S": TaskInstanceState.SUCCESS.value,
    "F": TaskInstanceState.FAILED.value,
    "R": TaskInstanceState.UP_FOR_RETRY.value,
    "W": TaskInstanceState.UP_FOR_RESCHEDULE.value,
    "D": TaskInstanceState.DEFERRED.value,
    "U": TaskInstanceState.UPSTREAM_FAILED.value,
    "K": TaskInstanceState.SKIPPED.value,
    "X": TaskInstanceState.REMOVED.value,
}
"""One character per task instance state in the grid's per-run strings."""

_CODE_OF = {state: code for code, state in STATE_CODES.items() if state}
_SEP = "\x1f"  # ASCII unit separator: cannot appear in a task id (letters, digits, _ - .)


@router.get("/dags/{dag_id}/grid")
def grid_page(request: Request, dag_id: str, run_id: str | None = None) -> Response:
    """Runs × tasks coloured by state, live; Trigger, and Clear / Mark for the selected run."""
    if session_principal(request) is None:
        return login_redirect(request)
    return page(
        request, "grid.html", title=f"{dag_id} · grid", tab="grid", run_id=run_id, **dag_context(request, dag_id)
    )


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
    groups: list[UiGroup] = []
    """The current version's task groups (parents first); ``[]`` without groups."""
    rows: list[GridRow] = []
    """Tasks and groups in tree order (the page hides the rows of collapsed groups)."""
    group_states: list[str] = []
    """Per run (as ``states``), one code per group of ``groups``: the aggregate of its tasks' states."""
    mapped: list[dict[str, dict[str, int]]] = []
    """Per run (as ``states``): mapped task id → {state: number of its task instances in it}, for the mapped
    tasks expanded in that run (their cell shows the aggregate state); ``[]`` without mapped tasks."""


@data_router.get("/dags/{dag_id}/grid", response_model=Grid)
def grid(
    request: Request,
    dag_id: str,
    num_runs: Annotated[int, Query(ge=1, le=500)] = 25,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Grid:
    """The newest ``num_runs`` runs (skipping ``offset`` newer ones) × all tasks, compactly.

    Raises ``DagNotFound`` (404). Three queries: the DAG's version, its runs, their task instances.
    """
    with get_db(request).read_session() as session:
        serialized = current_serialized(session, dag_id)
        tasks: dict[str, Any] = serialized["tasks"]
        runs = newest_runs(session, dag_id, num_runs, offset)[::-1]
        total = session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id == dag_id)) or 0
        task_ids = topological_order(tasks)
        index = {tid: i for i, tid in enumerate(task_ids)}
        column = {row.id: i for i, row in enumerate(runs)}
        cells = [["-"] * len(task_ids) for _ in runs]
        mapped: list[dict[str, dict[str, int]]] = [{} for _ in runs]
        unfinished = any(r.state not in RUN_FINISHED for r in runs)
        if runs:
            # One row per run: "code<task_id>\x1f…" (a mapped task's instances: "code<task_id>:<map index>"),
            # built by the database (group_concat / string_agg), so Python handles 100 strings instead of
            # 100,000 row tuples.
            code = case(_CODE_OF, value=TaskInstance.state, else_="n")
            item_of = case(
                (TaskInstance.map_index < 0, code + TaskInstance.task_id),
                else_=code + TaskInstance.task_id + ":" + cast(TaskInstance.map_index, String),
            )
            rows = session.execute(
                select(TaskInstance.dag_run_id, func.aggregate_strings(item_of, _SEP))
                .where(TaskInstance.dag_run_id.in_(list(column)))
                .group_by(TaskInstance.dag_run_id)
            ).all()
            for run_pk, packed in rows:
                line = cells[column[run_pk]]
                counts = mapped[column[run_pk]]
                for item in packed.split(_SEP):
                    task_id = item[1:]
                    if ":" in task_id:  # an index of a mapped task: counted, its cell aggregated below
                        task_id = task_id.rsplit(":", 1)[0]
                        state = STATE_CODES[item[0]]
                        per_state = counts.setdefault(task_id, {})
                        per_state[state] = per_state.get(state, 0) + 1
                        if task_id in index:
                            continue
                    j = index.get(task_id)
                    if j is None:  # a task only older versions had: add a row for it
                        j = index[task_id] = len(task_ids)
                        task_ids.append(task_id)
                        for other in cells:
                            other.append("-")
                    line[j] = item[0]
                for task_id, per_state in counts.items():
                    summary = aggregate_state(per_state)
                    line[index[task_id]] = _CODE_OF.get(summary, "n") if summary is not None else "-"
    groups = ui_groups(serialized)
    return Grid(
        dag_id=dag_id,
        task_ids=task_ids,
        runs=[grid_run(r) for r in runs],
        states=["".join(line) for line in cells],
        codes=STATE_CODES,
        total_runs=total,
        unfinished=unfinished,
        groups=groups,
        rows=grid_rows(task_ids, groups) if groups else [],
        group_states=_group_codes(groups, task_ids, cells),
        mapped=mapped if any(mapped) else [],
    )


def _group_codes(groups: list[UiGroup], task_ids: list[str], cells: list[list[str]]) -> list[str]:
    """Per run, one state code per group: :func:`aggregate_state` of its tasks' cells (``-``: none ran)."""
    if not groups:
        return []
    index = {tid: j for j, tid in enumerate(task_ids)}
    members = [[index[t] for t in g.task_ids if t in index] for g in groups]
    out = []
    for line in cells:
        codes = []
        for cols in members:
            state = aggregate_state(STATE_CODES[line[j]] for j in cols if line[j] != "-")
            codes.append(_CODE_OF.get(state, "-") if state is not None else "-")
        out.append("".join(codes))
    return out


__all__ = ["STATE_CODES", "Grid", "data_router", "grid", "router"]
