"""Writing asset events and the asset DAG-run queue (Airflow's ``AssetManager.register_asset_change``).

:func:`record_asset_events` runs in the transaction that records a producing try's success (so an event
exists exactly when the success does) and in the API's / CLI's transaction for an event from outside. For
each event it finds (or creates) the asset, inserts the ``asset_event`` row, links an alias to the asset it
resolved to, and queues the event for every active, unpaused DAG scheduled on the asset (directly or through
an alias): one ``asset_dag_run_queue`` row per (asset, DAG), its time moved to the latest event
(``INSERT … ON CONFLICT DO UPDATE``). The scheduler turns the queue into runs
(:mod:`headrace.scheduler.asset_runs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, literal, select, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headrace.db.asset_models import (
    AssetAliasAssetModel,
    AssetAliasModel,
    AssetDagRunQueue,
    AssetEvent,
    AssetModel,
    DagRunAssetEvent,
    DagScheduleAssetAliasReference,
    DagScheduleAssetReference,
)
from headrace.db.models import DagModel
from headrace.exceptions import AssetNotFound


@dataclass(frozen=True)
class EventSource:
    """The task instance whose successful try produced an event (None for an event from outside)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1


def _insert_ignore(bind: Connection | Session, table: Any) -> Any:
    name = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(name)
    if dialect is None:
        return insert(table).prefix_with("IGNORE")
    return dialect.insert(table).on_conflict_do_nothing()


def ensure_asset(
    conn: Connection | Session, *, name: str, uri: str, group: str, extra: Mapping[str, Any], now: datetime
) -> int:
    """The id of asset ``(name, uri)``, inserting it when new (concurrent inserts are harmless); ``group`` and
    ``extra`` are updated when they changed."""
    row = conn.execute(
        select(AssetModel.id, AssetModel.group, AssetModel.extra).where(AssetModel.name == name, AssetModel.uri == uri)
    ).first()
    if row is None:
        conn.execute(
            _insert_ignore(conn, AssetModel).values(
                name=name, uri=uri, group=group, extra=dict(extra), created_at=now, updated_at=now
            )
        )
        return int(
            conn.execute(select(AssetModel.id).where(AssetModel.name == name, AssetModel.uri == uri)).scalar_one()
        )
    if row.group != group or dict(row.extra or {}) != dict(extra):
        conn.execute(
            update(AssetModel).where(AssetModel.id == row.id).values(group=group, extra=dict(extra), updated_at=now)
        )
    return int(row.id)


def ensure_alias(conn: Connection | Session, name: str, group: str) -> int:
    """The id of alias ``name``, inserting it when new."""
    found = conn.execute(select(AssetAliasModel.id).where(AssetAliasModel.name == name)).scalar()
    if found is not None:
        return int(found)
    conn.execute(_insert_ignore(conn, AssetAliasModel).values(name=name, group=group))
    return int(conn.execute(select(AssetAliasModel.id).where(AssetAliasModel.name == name)).scalar_one())


def record_asset_events(
    conn: Connection | Session, events: Iterable[Mapping[str, Any]], *, source: EventSource | None, at: datetime
) -> list[int]:
    """Record asset events and queue them for their consumer DAGs; return the new ``asset_event`` ids.

    Each event: ``{"name", "uri", "group", "extra", "alias"}`` (``alias``: the alias name it was attached to,
    or None; an alias event creates its asset when new). Writes in the caller's transaction.
    """
    ids: list[int] = []
    for event in events:
        asset_id = ensure_asset(
            conn,
            name=event["name"],
            uri=event["uri"],
            group=event.get("group") or "asset",
            extra=event.get("asset_extra") or {},
            now=at,
        )
        alias = event.get("alias")
        if alias:
            alias_id = ensure_alias(conn, alias, event.get("alias_group") or "asset")
            conn.execute(_insert_ignore(conn, AssetAliasAssetModel).values(alias_id=alias_id, asset_id=asset_id))
        result = conn.execute(
            insert(AssetEvent)
            .values(
                asset_id=asset_id,
                extra=dict(event.get("extra") or {}),
                source_dag_id=source.dag_id if source else None,
                source_task_id=source.task_id if source else None,
                source_run_id=source.run_id if source else None,
                source_map_index=source.map_index if source else -1,
                source_alias=alias or None,
                timestamp=at,
            )
            .returning(AssetEvent.id)
        )
        ids.append(int(result.scalar_one()))
        queue_for_consumers(conn, asset_id, at)
    return ids


def queue_for_consumers(conn: Connection | Session, asset_id: int, at: datetime) -> None:
    """Queue asset ``asset_id``'s update at ``at`` for every active, unpaused DAG scheduled on it (directly or
    through an alias that resolved to it). An existing queue row takes the new time, so the run that consumes
    it links every event up to then; a scheduler that read the row before loses its compare-and-set claim
    and creates the run on its next pass (see :mod:`headrace.scheduler.asset_runs`)."""
    direct = select(DagScheduleAssetReference.dag_id.label("dag_id")).where(
        DagScheduleAssetReference.asset_id == asset_id
    )
    through_alias = (
        select(DagScheduleAssetAliasReference.dag_id.label("dag_id"))
        .join(AssetAliasAssetModel, AssetAliasAssetModel.alias_id == DagScheduleAssetAliasReference.alias_id)
        .where(AssetAliasAssetModel.asset_id == asset_id)
    )
    consumers = union(direct, through_alias).subquery()
    targets = select(literal(asset_id), DagModel.dag_id, literal(at, AssetDagRunQueue.created_at.type)).join(
        consumers, and_(consumers.c.dag_id == DagModel.dag_id, DagModel.is_active, DagModel.is_paused.is_(False))
    )
    name = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[name]
    upsert = dialect.insert(AssetDagRunQueue).from_select(["asset_id", "target_dag_id", "created_at"], targets)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[AssetDagRunQueue.asset_id, AssetDagRunQueue.target_dag_id],
            set_={"created_at": upsert.excluded.created_at},
        )
    )


def find_asset(conn: Connection | Session, *, uri: str | None = None, name: str | None = None) -> AssetModel | Any:
    """The ``asset`` row with this URI (or name; both: both must match). Raises ``AssetNotFound``; ``ValueError``
    when neither is given."""
    if uri is None and name is None:
        raise ValueError("an asset event needs the asset's uri or name")
    query = select(AssetModel)
    if uri is not None:
        query = query.where(AssetModel.uri == uri)
    if name is not None:
        query = query.where(AssetModel.name == name)
    row = conn.execute(query.order_by(AssetModel.id).limit(1)).first()
    if row is None:
        what = " and ".join(f"{k} {v!r}" for k, v in (("uri", uri), ("name", name)) if v is not None)
        raise AssetNotFound(f"no asset with {what}; an asset exists once a DAG names it")
    return row[0]


def create_external_event(
    session: Session, *, uri: str | None, name: str | None, extra: Mapping[str, Any] | None, at: datetime
) -> AssetEvent:
    """An asset event from outside (API ``POST /api/v1/assets/events``, ``headrace assets materialize``…).

    Raises ``AssetNotFound`` (unknown asset) and ``ValueError`` (no uri or name, ``extra`` not a JSON object).
    """
    if extra is not None and not isinstance(extra, Mapping):
        raise ValueError(f"extra must be a JSON object, got {type(extra).__name__}")
    asset = find_asset(session, uri=uri, name=name)
    (event_id,) = record_asset_events(
        session,
        [{"name": asset.name, "uri": asset.uri, "group": asset.group, "asset_extra": asset.extra, "extra": extra}],
        source=None,
        at=at,
    )
    event = session.get(AssetEvent, event_id)
    assert event is not None
    return event


_EVENT_COLUMNS = (
    AssetEvent.id,
    AssetModel.name,
    AssetModel.uri,
    AssetModel.group,
    AssetEvent.extra,
    AssetEvent.timestamp,
    AssetEvent.source_dag_id,
    AssetEvent.source_task_id,
    AssetEvent.source_run_id,
    AssetEvent.source_map_index,
    AssetEvent.source_alias,
)


def _event_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["extra"] = dict(data["extra"] or {})
    data["timestamp"] = data["timestamp"].isoformat()
    return data


def asset_events_of(conn: Connection | Session, name: str, uri: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """The latest ``limit`` events of asset ``(name, uri)``, oldest first (``AssetEventInfo.from_dict`` shape);
    empty for an unknown asset."""
    rows = conn.execute(
        select(*_EVENT_COLUMNS)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.name == name, AssetModel.uri == uri)
        .order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc())
        .limit(limit)
    ).all()
    return [_event_dict(r) for r in reversed(rows)]


def triggering_events_of(conn: Connection | Session, dag_run_pk: int) -> tuple[dict[str, Any], ...]:
    """The events asset-triggered run ``dag_run_pk`` consumed, oldest first (``AssetEventInfo.from_dict`` shape)."""
    rows = conn.execute(
        select(*_EVENT_COLUMNS)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .join(DagRunAssetEvent, DagRunAssetEvent.event_id == AssetEvent.id)
        .where(DagRunAssetEvent.dag_run_id == dag_run_pk)
        .order_by(AssetEvent.timestamp, AssetEvent.id)
    ).all()
    return tuple(_event_dict(r) for r in rows)


__all__ = [
    "asset_events_of",
    "triggering_events_of",
    "AssetNotFound",
    "EventSource",
    "create_external_event",
    "ensure_alias",
    "ensure_asset",
    "find_asset",
    "queue_for_consumers",
    "record_asset_events",
]
