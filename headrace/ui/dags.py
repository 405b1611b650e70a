"""The DAG list (``GET /``) and its data ``GET /ui/data/recent_runs`` (the last run states of every DAG).

The page itself (``static/dags.js``) reads ``/api/v1/dags`` and ``/api/v1/importErrors`` too; it stays live
while a recent run is unfinished. A DAG with warnings (its ``warnings`` in ``/api/v1/dags``) gets a badge opening them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, select

from headrace.api.auth import get_db, require
from headrace.db.models import DagRun
from headrace.ui.render import page

router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/ui/data", tags=["ui"], dependencies=[Depends(require("viewer"))])


@router.get("/")
def dag_list(request: Request) -> Response:
    """The DAG list: recent run states, schedule, next run, pause toggle, tags, DAG warnings, import errors banner."""
    return page(request, "dags.html", title="DAGs", nav="dags")


class RecentRuns(BaseModel):
    """``dag_id`` → its newest runs as ``[run_id, state]``, newest last."""

    recent_runs: dict[str, list[tuple[str, str]]]


@data_router.get("/recent_runs", response_model=RecentRuns)
def recent_runs(request: Request, limit: Annotated[int, Query(ge=1, le=50)] = 10) -> RecentRuns:
    """The newest ``limit`` runs of every DAG, in one query (a window function)."""
    ranked = select(
        DagRun.dag_id,
        DagRun.run_id,
        DagRun.state,
        DagRun.id,
        func.row_number()
        .over(partition_by=DagRun.dag_id, order_by=(DagRun.logical_date.desc().nulls_last(), DagRun.id.desc()))
        .label("rn"),
    ).subquery()
    with get_db(request).read_session() as session:
        rows = session.execute(
            select(ranked.c.dag_id, ranked.c.run_id, ranked.c.state)
            .where(ranked.c.rn <= limit)
            .order_by(ranked.c.dag_id, ranked.c.rn.desc())
        ).all()
    out: dict[str, list[tuple[str, str]]] = {}
    for dag_id, run_id, state in rows:
        out.setdefault(dag_id, []).append((run_id, state))
    return RecentRuns(recent_runs=out)


__all__ = ["RecentRuns", "data_router", "router"]
