"""The Gantt chart of a DAG run (``GET /dags/{dag_id}/runs/{run_id}/gantt``): one bar per try on a time axis.

Retries are separate bars, coloured by the try's state, hatched when the
supervisor ended it for ``memory_limit`` or ``execution_timeout``; drawn as SVG
by ``static/gantt.js`` from ``GET /ui/data/dags/{dag_id}/runs/{run_id}/gantt``
(:func:`gantt_of_run`, role viewer); the page refreshes while the run is
unfinished. An unknown DAG or DAG run renders the page's message with status 404.

Units: datetimes are ISO 8601 in UTC, durations in seconds (float), memory in
bytes (int). A try still running has ``end_date`` null and its ``duration``
measured up to ``now`` (the response's ``now``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api.auth import get_db, get_encryptor, require
from headrace.db.models import TaskInstance, TaskTry
from headrace.masking import mask_or_none
from headrace.secrets_store import stored_secrets_masker
from headrace.states import TaskInstanceState
from headrace.ui.queries import get_run, iso, run_tasks, seconds, topological_order
from headrace.ui.render import dag_page_context, page

router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/ui/data", tags=["ui"], include_in_schema=False)

QUEUED_STATES = frozenset({TaskInstanceState.QUEUED.value, TaskInstanceState.SCHEDULED.value})


@router.get("/dags/{dag_id}/runs/{run_id}/gantt")
def gantt_page(dag_id: str, run_id: str, request: Request) -> Response:
    """The Gantt chart of DAG run ``run_id`` (404 page for an unknown DAG or run)."""
    ctx = dag_page_context(request, dag_id, run_id)
    return page(
        request,
        "gantt.html",
        status_code=404 if ctx["missing"] else 200,
        title=f"{dag_id} · {run_id} · Gantt",
        tab="gantt",
        **ctx,
    )


def gantt_of_run(session: Session, dag_id: str, run_id: str, *, now: datetime) -> dict[str, Any]:
    """The bars of the Gantt chart of DAG run ``run_id`` of ``dag_id``.

    Returns ``{dag_id, run_id, state, queued_at, start_date, end_date, now,
    tasks: [task_id, …], tries: [...], waits: [...]}`` where

    * ``tasks`` are the rows of the chart: tasks that have a try, by their first
      start, then the others in DAG order (upstream first);
    * ``tries`` has one bar per try, ordered by task row then ``try_number``:
      ``{task_id, try_number, state, end_reason, start_date, end_date,
      duration (s), running (bool), hostname, pid, exit_code, peak_rss_bytes,
      cpu_seconds, error}``. A running try has ``end_date`` null and its
      duration up to ``now``;
    * ``waits`` has, per task instance, the wait of its latest try between being
      queued and starting: ``{task_id, try_number, queued_at, start_date (null
      while still waiting), duration (s), state}``.

    Raises ``DagNotFound`` / ``DagRunNotFound`` (404).
    """
    run = get_run(session, dag_id, run_id)
    dag_order = topological_order(run_tasks(session, run))
    tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_run_id == run.id)).all()
    tries = session.scalars(
        select(TaskTry)
        .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
        .where(TaskInstance.dag_run_id == run.id)
    ).all()

    first_start: dict[str, datetime] = {}
    for t in tries:
        if t.task_id not in first_start or t.start_date < first_start[t.task_id]:
            first_start[t.task_id] = t.start_date
    dag_rank = {tid: i for i, tid in enumerate(dag_order)}
    known = set(dag_order) | {ti.task_id for ti in tis} | set(first_start)
    rows = sorted(
        known,
        key=lambda tid: (
            tid not in first_start,
            first_start.get(tid, now),
            dag_rank.get(tid, len(dag_rank)),
            tid,
        ),
    )
    row_rank = {tid: i for i, tid in enumerate(rows)}

    bars = []
    tried: set[tuple[str, int]] = set()
    for t in sorted(tries, key=lambda t: (row_rank[t.task_id], t.try_number)):
        running = t.end_date is None
        tried.add((t.task_id, t.try_number))
        bars.append(
            {
                "task_id": t.task_id,
                "try_number": t.try_number,
                "state": t.state,
                "end_reason": t.end_reason,
                "start_date": iso(t.start_date),
                "end_date": iso(t.end_date),
                "duration": seconds(t.start_date, t.end_date or now),
                "running": running,
                "hostname": t.hostname,
                "pid": t.pid,
                "exit_code": t.exit_code,
                "peak_rss_bytes": t.peak_rss_bytes,
                "cpu_seconds": t.cpu_seconds,
                "error": t.error,
            }
        )

    starts = {(t.task_id, t.try_number): t.start_date for t in tries}
    waits = []
    for ti in sorted(tis, key=lambda ti: row_rank[ti.task_id]):
        if ti.queued_at is None or ti.try_number == 0:
            continue
        started = starts.get((ti.task_id, ti.try_number))
        if started is None and ti.state not in QUEUED_STATES:
            continue  # ended without a try row (e.g. marked by hand): no wait to show
        waits.append(
            {
                "task_id": ti.task_id,
                "try_number": ti.try_number,
                "queued_at": iso(ti.queued_at),
                "start_date": iso(started),
                "duration": seconds(ti.queued_at, started or now),
                "state": ti.state,
            }
        )

    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state,
        "queued_at": iso(run.queued_at),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "now": iso(now),
        "tasks": rows,
        "tries": bars,
        "waits": waits,
    }


@data_router.get("/dags/{dag_id}/runs/{run_id}/gantt")
def gantt(
    dag_id: str, run_id: str, request: Request, _who: Annotated[object, Depends(require("viewer"))]
) -> dict[str, Any]:
    """Bars of the Gantt chart of a DAG run (see :func:`gantt_of_run`); 404 for an unknown DAG or run."""
    with get_db(request).read_session() as session:
        bars = gantt_of_run(session, dag_id, run_id, now=datetime.now(UTC))
        masker = stored_secrets_masker(session, get_encryptor(request))
    for bar in bars["tries"]:
        bar["error"] = mask_or_none(masker, bar["error"])  # stored secrets, as in the try's log
    return bars


__all__ = ["QUEUED_STATES", "data_router", "gantt_of_run", "router"]
