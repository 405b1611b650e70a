"""The DAGs a DAG is linked to through assets: shown as upstream and downstream DAGs on its pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from headrace.db.asset_models import DagScheduleAssetReference, TaskOutletAssetReference


def dag_links(session: Session, dag_id: str) -> dict[str, list[str]]:
    """The DAGs linked to ``dag_id`` through assets: ``upstream`` (they produce an asset it is scheduled on)
    and ``downstream`` (they are scheduled on an asset it produces), each sorted, without itself."""
    schedule = aliased(DagScheduleAssetReference)
    outlet = aliased(TaskOutletAssetReference)
    upstream = session.scalars(
        select(outlet.dag_id)
        .join(schedule, schedule.asset_id == outlet.asset_id)
        .where(schedule.dag_id == dag_id, outlet.dag_id != dag_id)
        .distinct()
    )
    downstream = session.scalars(
        select(schedule.dag_id)
        .join(outlet, outlet.asset_id == schedule.asset_id)
        .where(outlet.dag_id == dag_id, schedule.dag_id != dag_id)
        .distinct()
    )
    return {"upstream": sorted(upstream), "downstream": sorted(downstream)}


__all__ = ["dag_links"]
