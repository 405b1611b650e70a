"""Asset-triggered DAG runs: turn the asset DAG-run queue into runs (Airflow's asset_dag_run_queue semantics).

Producing tries (and external events) queue one ``asset_dag_run_queue`` row per (asset, consumer DAG)
(:mod:`headrace.db.assets`). :func:`create_asset_runs` reads the queue; for each active, unpaused DAG whose
asset condition (``schedule=[...]``, ``a | b``, ``AssetOrTimeSchedule``) is met by the queued assets it

1. **claims** the DAG's queued rows by compare-and-set: ``DELETE … WHERE asset_id = ? AND target_dag_id = ?
   AND created_at = ?`` for exactly the rows it read, in a savepoint. If any row is gone or changed (another
   scheduler claimed it first, or a new event moved its time), the savepoint is rolled back and no run is
   created: the same events never create two runs, and a newer event is consumed by the next pass. On
   PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``, in one order: a scheduler never waits for rows
   another one is claiming, and never sees them;
2. creates a queued ``asset_triggered`` run whose logical date is the latest queued time (the moment the
   condition was met; Airflow 3 leaves it empty, Airflow 2 set it so — here templates such as ``ds`` keep
   working), run id ``asset_triggered__<logical date>``, and data interval from the earliest start to the
   latest end of the producing runs' intervals (the logical date when no event came from a run);
3. links the events it consumed (``dagrun_asset_event``): every event of the DAG's assets after its previous
   asset-triggered run's logical date, up to this one's — ``triggering_asset_events`` in the run's context.

Queued rows of a DAG whose condition is not met yet stay (an ``AssetAll`` waits for its other assets).
Rows of a DAG no longer scheduled on assets are dropped. Runs are created ``queued`` and start within
``max_active_runs`` like any other.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, tuple_
from sqlalchemy.orm import Session

from headrace.authoring.asset_timetables import asset_condition_of
from headrace.authoring.assets import AssetUniqueKey, BaseAsset
from headrace.authoring.schedules import DataInterval
from headrace.db import queries
from headrace.db.asset_models import (
    AssetAliasAssetModel,
    AssetAliasModel,
    AssetDagRunQueue,
    AssetEvent,
    AssetModel,
    DagRunAssetEvent,
)
from headrace.db.models import DagModel, DagRun
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.runs import create_dag_run, run_id_for

log = logging.getLogger(__name__)

RUN_TYPE = "asset_triggered"


class _Lost(Exception):
    """Another scheduler claimed a queued row first (rolls the savepoint back)."""


def queued_dag_ids(session: Session) -> list[str]:
    """Ids of DAGs with queued asset updates (what :func:`create_asset_runs` will look at)."""
    return list(session.scalars(select(AssetDagRunQueue.target_dag_id).distinct()))


def create_asset_runs(session: Session, now: datetime, *, cache: DagCache) -> int:
    """Create the asset-triggered runs whose condition is met (see the module docstring); return how many.

    Takes an open session and never commits; each DAG's claim and run are in a savepoint of it.
    """
    rows = session.execute(
        select(
            AssetDagRunQueue.target_dag_id,
            AssetDagRunQueue.asset_id,
            AssetDagRunQueue.created_at,
            AssetModel.name,
            AssetModel.uri,
        )
        .join(AssetModel, AssetModel.id == AssetDagRunQueue.asset_id)
        # Several schedulers (PostgreSQL): rows another one is claiming are left to it, and rows are locked and
        # deleted in one order by all of them (no deadlock).
        .order_by(AssetDagRunQueue.target_dag_id, AssetDagRunQueue.asset_id, AssetDagRunQueue.created_at)
        .with_for_update(skip_locked=True, of=AssetDagRunQueue)
    ).all()
    by_dag: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_dag[row.target_dag_id].append(row)
    created = 0
    for dag_id, queued in sorted(by_dag.items()):
        dag = session.get(DagModel, dag_id)
        if dag is None or not dag.is_active or dag.is_paused:
            continue  # kept: Airflow queues only for active, unpaused DAGs; these were queued before a pause
        version = queries.current_version(session, dag)
        if version is None:
            continue
        sdag = cache.get(session, version.id)
        condition = asset_condition_of(sdag.timetable)
        if condition is None:  # no longer scheduled on assets: its queue means nothing
            _claim(session, dag_id, queued, strict=False)
            continue
        aliases = _resolved_aliases(session, condition)
        statuses = {AssetUniqueKey(r.name, r.uri): True for r in queued}
        if not condition.evaluate(statuses, aliases):
            continue
        try:
            with session.begin_nested():
                _claim(session, dag_id, queued, strict=True)
                run = _create_run(session, sdag, version.id, condition, aliases, queued, now)
        except _Lost:
            log.info("asset-triggered run of %s: its queued events were claimed by another scheduler", dag_id)
            continue
        created += 1
        log.info("created asset-triggered DAG run %s of %s", run.run_id, dag_id)
    if created:
        session.flush()
    return created


def _claim(session: Session, dag_id: str, queued: list[Any], *, strict: bool) -> None:
    """Delete exactly the queued rows read; ``strict``: raise ``_Lost`` unless every one was still there."""
    for row in queued:
        result = session.execute(
            delete(AssetDagRunQueue).where(
                AssetDagRunQueue.asset_id == row.asset_id,
                AssetDagRunQueue.target_dag_id == dag_id,
                AssetDagRunQueue.created_at == row.created_at,
            )
        )
        if strict and result.rowcount != 1:  # type: ignore[attr-defined]
            raise _Lost(dag_id)


def _resolved_aliases(session: Session, condition: BaseAsset) -> dict[str, list[AssetUniqueKey]]:
    names = [a.name for a in condition.iter_aliases()]
    if not names:
        return {}
    resolved: dict[str, list[AssetUniqueKey]] = defaultdict(list)
    for alias, name, uri in session.execute(
        select(AssetAliasModel.name, AssetModel.name, AssetModel.uri)
        .join(AssetAliasAssetModel, AssetAliasAssetModel.alias_id == AssetAliasModel.id)
        .join(AssetModel, AssetModel.id == AssetAliasAssetModel.asset_id)
        .where(AssetAliasModel.name.in_(names))
    ):
        resolved[alias].append(AssetUniqueKey(name, uri))
    return resolved


def _create_run(
    session: Session,
    sdag: Any,
    version_id: int,
    condition: BaseAsset,
    aliases: dict[str, list[AssetUniqueKey]],
    queued: list[Any],
    now: datetime,
) -> DagRun:
    triggered = max(r.created_at for r in queued)
    previous = session.scalar(
        select(func.max(DagRun.logical_date)).where(
            DagRun.dag_id == sdag.dag_id, DagRun.run_type == RUN_TYPE, DagRun.logical_date < triggered
        )
    )
    keys = {a.key for a in condition.iter_assets()} | {k for ks in aliases.values() for k in ks}
    asset_ids = select(AssetModel.id).where(tuple_(AssetModel.name, AssetModel.uri).in_(sorted(keys)))
    where = [AssetEvent.asset_id.in_(asset_ids), AssetEvent.timestamp <= triggered]
    if previous is not None:
        where.append(AssetEvent.timestamp > previous)
    events = list(session.scalars(select(AssetEvent.id).where(*where)))
    run_id = run_id_for(RUN_TYPE, triggered)
    if queries.run_exists(session, sdag.dag_id, run_id=run_id) or queries.run_exists(
        session, sdag.dag_id, logical_date=triggered
    ):
        raise _Lost(sdag.dag_id)  # a run at that very instant exists (created by hand): try again later
    run = create_dag_run(
        session,
        sdag,
        version_id,
        run_id=run_id,
        run_type=RUN_TYPE,
        logical_date=triggered,
        data_interval=_data_interval(session, where, triggered),
        now=now,
    )
    if events:
        session.execute(insert(DagRunAssetEvent), [{"dag_run_id": run.id, "event_id": e} for e in events])
    return run


def _data_interval(session: Session, where: list[Any], triggered: datetime) -> DataInterval:
    """From the earliest start to the latest end of the data intervals of the runs that produced the consumed
    events (``where``: their filter); the instant ``triggered`` when none came from a run (Airflow's rule)."""
    bounds = session.execute(
        select(func.min(DagRun.data_interval_start), func.max(DagRun.data_interval_end))
        .join(
            AssetEvent,
            and_(AssetEvent.source_dag_id == DagRun.dag_id, AssetEvent.source_run_id == DagRun.run_id),
        )
        .where(*where)
    ).one()
    if bounds[0] is None or bounds[1] is None:
        return DataInterval.exact(triggered)
    return DataInterval(bounds[0], bounds[1])


def queued_asset_run_count(session: Session) -> int:
    """How many DAGs have queued asset updates (the ``asset_triggered`` runs waiting for their condition)."""
    return int(session.scalar(select(func.count(func.distinct(AssetDagRunQueue.target_dag_id)))) or 0)


__all__ = ["RUN_TYPE", "create_asset_runs", "queued_asset_run_count", "queued_dag_ids"]
