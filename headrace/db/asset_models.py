"""Tables of data-aware scheduling (revision 0015), with Airflow 3's names.

* ``asset`` — one asset by ``(name, uri)``, written by the DAG processor when a DAG names it (as an outlet,
  an inlet or in a schedule) and by an external event.
* ``asset_alias`` / ``asset_alias_asset`` — aliases, and the assets their events resolved to.
* ``dag_schedule_asset_reference`` / ``dag_schedule_asset_alias_reference`` — the DAGs scheduled on an asset
  (or alias): the consumers. ``task_outlet_asset_reference`` / ``task_inlet_asset_reference`` — the tasks
  that update / read an asset: the producers. All four are replaced whenever the DAG's file is parsed.
* ``asset_event`` — one update of an asset: by a task's successful try (``source_*``) or from outside.
* ``asset_dag_run_queue`` — per consumer DAG, the assets updated since its last asset-triggered run (Airflow's
  ``asset_dag_run_queue``): written with the event, deleted by compare-and-set when a run consumes them.
* ``dagrun_asset_event`` — the events an asset-triggered run consumed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from headrace.db.base import ID, NEVER_REUSED, Base, UtcDateTime


class AssetModel(Base):
    """An asset: a piece of data tasks update and DAGs are scheduled on."""

    __tablename__ = "asset"
    __table_args__ = (UniqueConstraint("name", "uri"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(1500))
    uri: Mapped[str] = mapped_column(String(1500), index=True)
    group: Mapped[str] = mapped_column(String(1500), default="asset")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AssetAliasModel(Base):
    """An asset alias: a name tasks attach asset events to at run time."""

    __tablename__ = "asset_alias"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(1500), unique=True)
    group: Mapped[str] = mapped_column(String(1500), default="asset")


class AssetAliasAssetModel(Base):
    """An asset an alias's events resolved to."""

    __tablename__ = "asset_alias_asset"

    alias_id: Mapped[int] = mapped_column(ForeignKey("asset_alias.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)


class DagScheduleAssetReference(Base):
    """DAG ``dag_id`` is scheduled on asset ``asset_id`` (a consumer)."""

    __tablename__ = "dag_schedule_asset_reference"

    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DagScheduleAssetAliasReference(Base):
    """DAG ``dag_id`` is scheduled on alias ``alias_id``."""

    __tablename__ = "dag_schedule_asset_alias_reference"

    alias_id: Mapped[int] = mapped_column(ForeignKey("asset_alias.id", ondelete="CASCADE"), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TaskOutletAssetReference(Base):
    """Task ``task_id`` of ``dag_id`` updates asset ``asset_id`` (a producer)."""

    __tablename__ = "task_outlet_asset_reference"

    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True, index=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TaskInletAssetReference(Base):
    """Task ``task_id`` of ``dag_id`` reads asset ``asset_id``."""

    __tablename__ = "task_inlet_asset_reference"

    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True, index=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AssetEvent(Base):
    """One update of an asset: by a task's successful try, or from outside (API, CLI: no ``source_*``)."""

    __tablename__ = "asset_event"
    __table_args__ = (Index("ix_asset_event_asset_timestamp", "asset_id", "timestamp"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_dag_id: Mapped[str | None] = mapped_column(String(250))
    source_task_id: Mapped[str | None] = mapped_column(String(250))
    source_run_id: Mapped[str | None] = mapped_column(String(250))
    source_map_index: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    source_alias: Mapped[str | None] = mapped_column(String(1500))
    """The alias the task attached the event to (None: an outlet asset, or from outside)."""
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class AssetDagRunQueue(Base):
    """Asset ``asset_id`` was updated for consumer DAG ``target_dag_id`` since that DAG's last asset-triggered run."""

    __tablename__ = "asset_dag_run_queue"

    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    target_dag_id: Mapped[str] = mapped_column(String(250), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    """The latest queued event's time (a later event for the same pair moves it)."""


class DagRunAssetEvent(Base):
    """Asset-triggered run ``dag_run_id`` consumed event ``event_id`` (its ``triggering_asset_events``)."""

    __tablename__ = "dagrun_asset_event"

    dag_run_id: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("asset_event.id", ondelete="CASCADE"), primary_key=True, index=True
    )


__all__ = [
    "AssetAliasAssetModel",
    "AssetAliasModel",
    "AssetDagRunQueue",
    "AssetEvent",
    "AssetModel",
    "DagRunAssetEvent",
    "DagScheduleAssetAliasReference",
    "DagScheduleAssetReference",
    "TaskInletAssetReference",
    "TaskOutletAssetReference",
]
