"""A DAG's resources page (``GET /dags/{dag_id}/resources?runs=50``): which task is the memory hog.

Per task, the peak memory (MiB) and duration of every try over the last runs,
with the ``memory_limit`` line (vendored Chart.js,
``static/vendor/chart.umd.min.js``), a summary bar chart, and a table with the
biggest peak first. ``static/resources.js`` reads
``GET /ui/data/dags/{dag_id}/resources?runs=50&series=20&task_id=…``
(:func:`resources_of_dag`, role viewer): peak RSS, duration and CPU seconds of
every try of each task over the DAG's last ``runs`` DAG runs, with the task's
``memory_limit``; tasks sorted by their highest peak RSS, so the memory hog
comes first. An unknown DAG renders the page's message with status 404.

Units: datetimes are ISO 8601 in UTC, durations and CPU time in seconds (float),
memory in bytes (int). A try still running has ``end_date`` null and its
``duration`` measured up to ``now`` (the response's ``now``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, Float, case, distinct, func, select, type_coerce
from sqlalchemy.orm import Session

from headrace.api.auth import get_db, require
from headrace.db import queries
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance, TaskTry
from headrace.exceptions import DagNotFound
from headrace.states import EndReason
from headrace.ui.queries import iso, seconds
from headrace.ui.render import dag_page_context, page

router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/ui/data", tags=["ui"], include_in_schema=False)

DEFAULT_RUNS = 50
"""How many of a DAG's latest runs the resources page looks at by default."""
MAX_RUNS = 1000
DEFAULT_SERIES = 20
"""For how many tasks (the biggest peak RSS first) the resources data includes every try."""


@router.get("/dags/{dag_id}/resources")
def resources_page(dag_id: str, request: Request, runs: int = Query(DEFAULT_RUNS, ge=1, le=MAX_RUNS)) -> Response:
    """Peak memory and duration per task over the DAG's last ``runs`` runs (404 page for an unknown DAG)."""
    ctx = dag_page_context(request, dag_id, None)
    return page(
        request,
        "resources.html",
        status_code=404 if ctx["missing"] else 200,
        title=f"{dag_id} · resources",
        tab="resources",
        runs=runs,
        **ctx,
    )


def _limits(serialized: Mapping[str, Any]) -> dict[str, int | None]:
    return {tid: t.get("memory_limit") for tid, t in serialized.get("tasks", {}).items()}


def _duration_sql(session: Session) -> ColumnElement[float]:
    """``task_try.end_date - start_date`` in seconds, as SQL (NULL while the try runs)."""
    if session.get_bind().dialect.name == "sqlite":  # UtcDateTime is ISO text there
        return (func.julianday(TaskTry.end_date) - func.julianday(TaskTry.start_date)) * 86400.0
    return type_coerce(func.extract("epoch", TaskTry.end_date - TaskTry.start_date), Float)


def _number(value: Any, digits: int | None = None) -> Any:
    """A SQL aggregate as a plain int/float (PostgreSQL gives Decimal for some), rounded to ``digits``."""
    if value is None:
        return None
    return round(float(value)) if digits is None else round(float(value), digits)


def _summaries(session: Session, run_pks: list[int], limits: Mapping[str, int | None]) -> list[dict[str, Any]]:
    """One summary per task with a try in the DAG runs ``run_pks`` or in ``limits``; aggregated in the database."""
    duration = _duration_sql(session)
    rows = (
        session.execute(
            select(
                TaskTry.task_id,
                func.count(),
                func.count(distinct(TaskInstance.dag_run_id)),
                func.max(TaskTry.peak_rss_bytes),
                func.avg(TaskTry.peak_rss_bytes),
                func.max(duration),
                func.avg(duration),
                func.max(TaskTry.cpu_seconds),
                func.sum(case((TaskTry.end_reason == EndReason.MEMORY_LIMIT_EXCEEDED.value, 1), else_=0)),
            )
            .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
            .where(TaskInstance.dag_run_id.in_(run_pks))
            .group_by(TaskTry.task_id)
        ).all()
        if run_pks
        else []
    )
    measured = {row[0]: row for row in rows}
    out = []
    for task_id in set(limits) | set(measured):
        limit = limits.get(task_id)
        _, tries, n_runs, max_peak, mean_peak, max_dur, mean_dur, max_cpu, over = measured.get(
            task_id, (task_id, 0, 0, None, None, None, None, None, 0)
        )
        max_peak = _number(max_peak)
        out.append(
            {
                "task_id": task_id,
                "memory_limit_bytes": limit,
                "tries": int(tries),
                "runs": int(n_runs),
                "max_peak_rss_bytes": max_peak,
                "mean_peak_rss_bytes": _number(mean_peak),
                "pct_of_limit": round(100.0 * max_peak / limit, 1) if max_peak is not None and limit else None,
                "max_duration": _number(max_dur, 3),
                "mean_duration": _number(mean_dur, 3),
                "max_cpu_seconds": _number(max_cpu, 3),
                "memory_limit_exceeded": int(over or 0),
            }
        )
    out.sort(key=lambda s: (s["max_peak_rss_bytes"] is None, -(s["max_peak_rss_bytes"] or 0), s["task_id"]))
    return out


def _latest_runs(session: Session, dag_id: str, runs: int) -> list[DagRun]:
    newest_first = session.scalars(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.queued_at.desc(), DagRun.id.desc()).limit(runs)
    ).all()
    return list(reversed(newest_first))


def _version_limits(session: Session, version_ids: set[int]) -> dict[int, dict[str, int | None]]:
    """``{dag_version pk: {task_id: memory_limit bytes or None}}``."""
    if not version_ids:
        return {}
    return {
        v.id: _limits(v.serialized) for v in session.scalars(select(DagVersion).where(DagVersion.id.in_(version_ids)))
    }


def _series(
    session: Session, dag_runs: list[DagRun], task_ids: list[str], now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Every try of ``task_ids`` in ``dag_runs``, oldest run first, then by try number."""
    if not task_ids or not dag_runs:
        return {tid: [] for tid in task_ids}
    run_index = {r.id: i for i, r in enumerate(dag_runs)}
    limits = _version_limits(session, {r.dag_version_id for r in dag_runs})
    version_of = {r.id: r.dag_version_id for r in dag_runs}
    rows = session.execute(
        select(
            TaskTry.task_id,
            TaskTry.run_id,
            TaskTry.try_number,
            TaskTry.state,
            TaskTry.end_reason,
            TaskTry.start_date,
            TaskTry.end_date,
            TaskTry.peak_rss_bytes,
            TaskTry.cpu_seconds,
            TaskInstance.dag_run_id,
        )
        .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
        .where(TaskInstance.dag_run_id.in_(list(run_index)), TaskTry.task_id.in_(task_ids))
    ).all()
    out: dict[str, list[dict[str, Any]]] = {tid: [] for tid in task_ids}
    for task_id, run_id, try_number, state, end_reason, start, end, peak, cpu, run_pk in rows:
        out[task_id].append(
            {
                "run_id": run_id,
                "run_index": run_index[run_pk],
                "try_number": try_number,
                "state": state,
                "end_reason": end_reason,
                "start_date": iso(start),
                "duration": seconds(start, end or now),
                "running": end is None,
                "peak_rss_bytes": peak,
                "cpu_seconds": cpu,
                "memory_limit_bytes": limits.get(version_of[run_pk], {}).get(task_id),
            }
        )
    for tries in out.values():
        tries.sort(key=lambda t: (t["run_index"], t["try_number"]))
    return out


def resources_of_dag(
    session: Session,
    dag_id: str,
    *,
    now: datetime,
    runs: int = DEFAULT_RUNS,
    series: int = DEFAULT_SERIES,
    task_ids: Iterable[str] = (),
) -> dict[str, Any]:
    """Peak memory, duration and CPU time per task over the last ``runs`` DAG runs of ``dag_id``.

    Returns ``{dag_id, now, runs: [{run_id, logical_date, queued_at, state}] (oldest
    first), tasks: [...], series: {task_id: [try, …]}}``:

    * ``tasks`` — one summary per task of the current DAG version or with a try
      in those runs, the highest ``max_peak_rss_bytes`` first (tasks never
      measured last): ``{task_id, memory_limit_bytes (current version, null if
      none), tries, runs, max_peak_rss_bytes, mean_peak_rss_bytes, pct_of_limit
      (max peak / limit × 100), max_duration, mean_duration (s, ended tries),
      max_cpu_seconds, memory_limit_exceeded (count of tries ended for it)}``;
      aggregated by the database, so a DAG of 1,000 tasks × 100 runs stays cheap;
    * ``series`` — every try of the first ``series`` tasks of that order and of
      each of ``task_ids``, oldest run first: ``{run_id, run_index (into
      runs), try_number, state, end_reason, start_date, duration (s),
      running, peak_rss_bytes, cpu_seconds, memory_limit_bytes (of the version
      that run used)}``.

    Raises ``DagNotFound`` (404) for an unknown DAG.
    """
    dag = session.get(DagModel, dag_id)
    if dag is None:
        raise DagNotFound(f"DAG {dag_id!r} not found")
    current = queries.current_version(session, dag)
    dag_runs = _latest_runs(session, dag_id, runs)
    summaries = _summaries(session, [r.id for r in dag_runs], _limits(current.serialized) if current else {})
    known = {s["task_id"] for s in summaries}
    wanted = [s["task_id"] for s in summaries[: max(series, 0)]] + [t for t in task_ids if t in known]
    return {
        "dag_id": dag_id,
        "now": iso(now),
        "runs": [
            {"run_id": r.run_id, "logical_date": iso(r.logical_date), "queued_at": iso(r.queued_at), "state": r.state}
            for r in dag_runs
        ],
        "tasks": summaries,
        "series": _series(session, dag_runs, list(dict.fromkeys(wanted)), now),
    }


@data_router.get("/dags/{dag_id}/resources")
def resources(
    dag_id: str,
    request: Request,
    _who: Annotated[object, Depends(require("viewer"))],
    runs: Annotated[int, Query(ge=1, le=MAX_RUNS)] = DEFAULT_RUNS,
    series: Annotated[int, Query(ge=0, le=10_000)] = DEFAULT_SERIES,
    task_id: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """Peak memory / duration / CPU per task over the last ``runs`` DAG runs (see :func:`resources_of_dag`)."""
    with get_db(request).read_session() as session:
        return resources_of_dag(
            session, dag_id, now=datetime.now(UTC), runs=runs, series=series, task_ids=task_id or ()
        )


__all__ = ["DEFAULT_RUNS", "DEFAULT_SERIES", "MAX_RUNS", "data_router", "resources_of_dag", "router"]
