"""Recording which assets a DAG is scheduled on and which of its tasks update or read them.

Called by the DAG processor for every DAG it stores: the assets and aliases the DAG names are created when
new, and the DAG's rows of ``dag_schedule_asset_reference``, ``dag_schedule_asset_alias_reference``,
``task_outlet_asset_reference`` and ``task_inlet_asset_reference`` are replaced (so the assets page shows
producers and consumers, and an event is queued for the DAGs scheduled on its asset).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from headrace.authoring.asset_timetables import asset_condition_of
from headrace.authoring.assets import Asset, AssetAlias, asset_from_json
from headrace.dagfiles.serialization import SerializedDag
from headrace.db.asset_models import (
    DagScheduleAssetAliasReference,
    DagScheduleAssetReference,
    TaskInletAssetReference,
    TaskOutletAssetReference,
)
from headrace.db.assets import ensure_alias, ensure_asset

_TABLES = (
    DagScheduleAssetReference,
    DagScheduleAssetAliasReference,
    TaskOutletAssetReference,
    TaskInletAssetReference,
)


def _asset_id(session: Session, asset: Asset, now: datetime) -> int:
    return ensure_asset(session, name=asset.name, uri=asset.uri, group=asset.group, extra=asset.extra, now=now)


def store_asset_references(session: Session, sdag: SerializedDag, now: datetime) -> int:
    """Replace the asset references of DAG ``sdag``; return how many rows it has now."""
    dag_id = sdag.dag_id
    for table in _TABLES:
        session.execute(delete(table).where(table.dag_id == dag_id))
    rows: list[Any] = []
    condition = asset_condition_of(sdag.timetable)
    if condition is not None:
        assets = {a.key: a for a in condition.iter_assets()}
        rows += [
            DagScheduleAssetReference(asset_id=_asset_id(session, a, now), dag_id=dag_id, created_at=now)
            for a in assets.values()
        ]
        aliases = {a.name: a for a in condition.iter_aliases()}
        rows += [
            DagScheduleAssetAliasReference(
                alias_id=ensure_alias(session, a.name, a.group), dag_id=dag_id, created_at=now
            )
            for a in aliases.values()
        ]
    for task in sdag.tasks.values():
        for kind, table in (("outlets", TaskOutletAssetReference), ("inlets", TaskInletAssetReference)):
            seen: set[int] = set()
            for data in getattr(task, kind):
                obj = asset_from_json(data)
                if isinstance(obj, AssetAlias):
                    ensure_alias(session, obj.name, obj.group)
                    continue
                if not isinstance(obj, Asset):
                    continue
                asset_id = _asset_id(session, obj, now)
                if asset_id not in seen:
                    seen.add(asset_id)
                    rows.append(table(asset_id=asset_id, dag_id=dag_id, task_id=task.task_id, created_at=now))
    session.add_all(rows)
    return len(rows)


__all__ = ["store_asset_references"]
