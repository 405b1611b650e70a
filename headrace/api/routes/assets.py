"""``/api/v1/assets``: assets with their producers and consumers, their events, and events from outside.

* ``GET /assets`` (viewer): assets by id, with the tasks that update them (``producing_tasks``) and the DAGs
  scheduled on them (``consuming_dags``); ``uri_pattern`` filters by a substring of the URI.
* ``GET /assets/{asset_id}`` (viewer): one asset.
* ``GET /assets/events`` (viewer): events, newest first, each with the asset-triggered runs it created
  (``created_dagruns``); filters ``asset_id``, ``source_dag_id``, ``source_task_id``, ``source_run_id``.
* ``POST /assets/events`` (operator): record an event from outside, as a producing task would: the DAGs
  scheduled on the asset get their asset-triggered runs. The body names the asset by ``asset_id``
  (Airflow 3), ``uri`` or ``name`` (``dataset_uri``: Airflow 2's API), with an optional ``extra`` object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.db.asset_models import (
    AssetEvent,
    AssetModel,
    DagRunAssetEvent,
    DagScheduleAssetReference,
    TaskOutletAssetReference,
)
from headrace.db.assets import create_external_event, find_asset
from headrace.db.models import DagRun
from headrace.db.wakeup import notify_scheduler
from headrace.exceptions import AssetNotFound, InvalidRequest

router = APIRouter(tags=["Asset"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
NOT_FOUND = not_found("no such asset")


class DagReference(BaseModel):
    """A DAG scheduled on an asset."""

    dag_id: str
    created_at: datetime


class TaskReference(BaseModel):
    """A task that updates an asset."""

    dag_id: str
    task_id: str
    created_at: datetime


class Asset(BaseModel):
    """An asset, its producers and consumers."""

    id: int
    name: str
    uri: str
    group: str
    extra: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    consuming_dags: list[DagReference]
    producing_tasks: list[TaskReference]


class AssetCollection(BaseModel):
    """A page of assets."""

    assets: list[Asset]
    total_entries: int


class CreatedDagRun(BaseModel):
    """An asset-triggered run that consumed an event."""

    dag_id: str
    run_id: str
    logical_date: datetime | None
    state: str


class AssetEventOut(BaseModel):
    """One asset event."""

    id: int
    asset_id: int
    uri: str
    name: str
    group: str
    extra: dict[str, Any]
    source_dag_id: str | None
    source_task_id: str | None
    source_run_id: str | None
    source_map_index: int
    source_alias: str | None
    timestamp: datetime
    created_dagruns: list[CreatedDagRun]


class AssetEventCollection(BaseModel):
    """A page of asset events, newest first."""

    asset_events: list[AssetEventOut]
    total_entries: int


class AssetEventCreate(BaseModel):
    """``POST /assets/events``: the asset (by ``asset_id``, ``uri``/``dataset_uri`` or ``name``) and ``extra``."""

    model_config = ConfigDict(extra="forbid")

    asset_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    uri: str | None = Field(default=None, min_length=1, max_length=1500)
    name: str | None = Field(default=None, min_length=1, max_length=1500)
    dataset_uri: str | None = Field(default=None, min_length=1, max_length=1500)
    """Airflow 2's name of ``uri``."""
    extra: dict[str, Any] | None = None


def _asset_out(session: Session, asset: AssetModel) -> Asset:
    consumers = session.execute(
        select(DagScheduleAssetReference.dag_id, DagScheduleAssetReference.created_at)
        .where(DagScheduleAssetReference.asset_id == asset.id)
        .order_by(DagScheduleAssetReference.dag_id)
    ).all()
    producers = session.execute(
        select(TaskOutletAssetReference.dag_id, TaskOutletAssetReference.task_id, TaskOutletAssetReference.created_at)
        .where(TaskOutletAssetReference.asset_id == asset.id)
        .order_by(TaskOutletAssetReference.dag_id, TaskOutletAssetReference.task_id)
    ).all()
    return Asset(
        id=asset.id,
        name=asset.name,
        uri=asset.uri,
        group=asset.group,
        extra=dict(asset.extra or {}),
        created_at=asset.created_at,
        updated_at=asset.updated_at,
        consuming_dags=[DagReference(dag_id=d, created_at=c) for d, c in consumers],
        producing_tasks=[TaskReference(dag_id=d, task_id=t, created_at=c) for d, t, c in producers],
    )


def _event_out(session: Session, event: AssetEvent, asset: AssetModel) -> AssetEventOut:
    runs = session.execute(
        select(DagRun.dag_id, DagRun.run_id, DagRun.logical_date, DagRun.state)
        .join(DagRunAssetEvent, DagRunAssetEvent.dag_run_id == DagRun.id)
        .where(DagRunAssetEvent.event_id == event.id)
        .order_by(DagRun.dag_id, DagRun.id)
    ).all()
    return AssetEventOut(
        id=event.id,
        asset_id=asset.id,
        uri=asset.uri,
        name=asset.name,
        group=asset.group,
        extra=dict(event.extra or {}),
        source_dag_id=event.source_dag_id,
        source_task_id=event.source_task_id,
        source_run_id=event.source_run_id,
        source_map_index=event.source_map_index,
        source_alias=event.source_alias,
        timestamp=event.timestamp,
        created_dagruns=[CreatedDagRun(dag_id=d, run_id=r, logical_date=ld, state=s) for d, r, ld, s in runs],
    )


@router.get("/assets", response_model=AssetCollection, dependencies=[VIEWER])
def list_assets(
    request: Request,
    pg: Annotated[Page, Depends(page)],
    uri_pattern: Annotated[str | None, Query(max_length=1500)] = None,
) -> AssetCollection:
    """Assets by id, with their producing tasks and consuming DAGs."""
    stmt = select(AssetModel)
    if uri_pattern:
        stmt = stmt.where(AssetModel.uri.contains(uri_pattern, autoescape=True))
    with get_db(request).read_session() as session:
        assets = list(session.scalars(pg.apply(stmt.order_by(AssetModel.id))))
        return AssetCollection(assets=[_asset_out(session, a) for a in assets], total_entries=count(session, stmt))


@router.get("/assets/events", response_model=AssetEventCollection, dependencies=[VIEWER])
def list_asset_events(
    request: Request,
    pg: Annotated[Page, Depends(page)],
    asset_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    source_dag_id: Annotated[str | None, Query(max_length=250)] = None,
    source_task_id: Annotated[str | None, Query(max_length=250)] = None,
    source_run_id: Annotated[str | None, Query(max_length=250)] = None,
) -> AssetEventCollection:
    """Asset events, newest first, with the runs they created."""
    stmt = select(AssetEvent, AssetModel).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
    for column, value in (
        (AssetEvent.asset_id, asset_id),
        (AssetEvent.source_dag_id, source_dag_id),
        (AssetEvent.source_task_id, source_task_id),
        (AssetEvent.source_run_id, source_run_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    with get_db(request).read_session() as session:
        rows = session.execute(pg.apply(stmt.order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc()))).all()
        return AssetEventCollection(
            asset_events=[_event_out(session, e, a) for e, a in rows], total_entries=count(session, stmt)
        )


@router.post(
    "/assets/events",
    response_model=AssetEventOut,
    dependencies=[OPERATOR],
    responses={**NOT_FOUND, 400: {"description": "no asset named, or an extra that is not JSON"}},
)
def create_asset_event(body: AssetEventCreate, request: Request) -> AssetEventOut:
    """Record an event of an asset from outside (operator); the DAGs scheduled on it get asset-triggered runs."""
    uri: str | None = body.uri or body.dataset_uri
    name: str | None = body.name
    if body.asset_id is None and uri is None and body.name is None:
        raise InvalidRequest("name the asset: asset_id, uri (or dataset_uri) or name")
    with get_db(request).session() as session:
        if body.asset_id is not None:
            found = session.get(AssetModel, body.asset_id)
            if found is None:
                raise AssetNotFound(f"no asset with id {body.asset_id}")
            uri, name = found.uri, found.name
        else:
            find_asset(session, uri=uri, name=name)  # 404 before anything is written
        try:
            event = create_external_event(session, uri=uri, name=name, extra=body.extra, at=datetime.now(UTC))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        notify_scheduler(session)  # the schedulers look at the queue when this commits
        asset = session.get(AssetModel, event.asset_id)
        assert asset is not None
        return _event_out(session, event, asset)


@router.get("/assets/{asset_id}", response_model=Asset, dependencies=[VIEWER], responses=NOT_FOUND)
def get_asset(asset_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request) -> Asset:
    """One asset, with its producing tasks and consuming DAGs."""
    with get_db(request).read_session() as session:
        asset = session.get(AssetModel, asset_id)
        if asset is None:
            raise AssetNotFound(f"no asset with id {asset_id}")
        return _asset_out(session, asset)
