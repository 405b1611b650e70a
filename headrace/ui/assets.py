"""The assets page (``GET /assets``): every asset with its producing tasks, the DAGs scheduled on it, and
the latest asset events with the DAG runs they triggered. Rendered on the server from the metadata DB
(the same reads as ``/api/v1/assets``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api.auth import get_db
from headrace.db.asset_models import (
    AssetEvent,
    AssetModel,
    DagRunAssetEvent,
    DagScheduleAssetReference,
    TaskOutletAssetReference,
)
from headrace.db.models import DagRun
from headrace.ui.render import page, session_principal

router = APIRouter(include_in_schema=False)

RECENT_EVENTS = 50
"""How many of the latest asset events the page lists."""


def _assets(session: Session) -> list[dict[str, Any]]:
    producers: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for asset_id, dag_id, task_id in session.execute(
        select(TaskOutletAssetReference.asset_id, TaskOutletAssetReference.dag_id, TaskOutletAssetReference.task_id)
    ):
        producers[asset_id].append((dag_id, task_id))
    consumers: dict[int, list[str]] = defaultdict(list)
    for asset_id, dag_id in session.execute(
        select(DagScheduleAssetReference.asset_id, DagScheduleAssetReference.dag_id)
    ):
        consumers[asset_id].append(dag_id)
    return [
        {
            "id": a.id,
            "name": a.name,
            "uri": a.uri,
            "group": a.group,
            "producers": sorted(producers[a.id]),
            "consumers": sorted(consumers[a.id]),
        }
        for a in session.execute(
            select(AssetModel.id, AssetModel.name, AssetModel.uri, AssetModel.group).order_by(AssetModel.name)
        )
    ]


def _events(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AssetEvent, AssetModel.uri)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc())
        .limit(RECENT_EVENTS)
    ).all()
    runs: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for event_id, dag_id, run_id, state in session.execute(
        select(DagRunAssetEvent.event_id, DagRun.dag_id, DagRun.run_id, DagRun.state)
        .join(DagRun, DagRun.id == DagRunAssetEvent.dag_run_id)
        .where(DagRunAssetEvent.event_id.in_([e.id for e, _ in rows]))
    ):
        runs[event_id].append((dag_id, run_id, state))
    return [
        {
            "id": e.id,
            "uri": uri,
            "timestamp": e.timestamp,
            "extra": e.extra or {},
            "source": (e.source_dag_id, e.source_task_id, e.source_run_id) if e.source_dag_id else None,
            "alias": e.source_alias,
            "runs": runs[e.id],
        }
        for e, uri in rows
    ]


@router.get("/assets")
def assets_page(request: Request) -> Response:
    """Assets, their producers and consumers, and the latest events with the runs they triggered."""
    if session_principal(request) is None:
        return page(request, "assets.html")  # the login redirect
    with get_db(request).read_session() as session:
        assets, events = _assets(session), _events(session)
    return page(request, "assets.html", title="Assets", nav="assets", assets=assets, events=events)


__all__ = ["RECENT_EVENTS", "router"]
