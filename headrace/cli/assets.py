"""``headrace assets list|events|materialize``: assets, their recent events, and running their producer."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import func, select

from headrace.cli.common import app_state, console, fail
from headrace.db.asset_models import (
    AssetEvent,
    AssetModel,
    DagRunAssetEvent,
    DagScheduleAssetReference,
    TaskOutletAssetReference,
)
from headrace.db.assets import find_asset
from headrace.db.models import DagRun

app = typer.Typer(
    help="List assets and their events; materialize an asset (run the DAG producing it).", no_args_is_help=True
)

NAME = typer.Option(None, "--name", help="The asset's name.")
URI = typer.Option(None, "--uri", help="The asset's URI.")


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List assets with the tasks that update them, the DAGs scheduled on them and their latest event."""
    db = app_state(ctx).migrated_db()
    with db.read_session() as session:
        assets = session.execute(
            select(AssetModel.id, AssetModel.name, AssetModel.uri, AssetModel.group).order_by(AssetModel.id)
        ).all()
        producers: dict[int, list[str]] = {}
        for asset_id, dag_id, task_id in session.execute(
            select(TaskOutletAssetReference.asset_id, TaskOutletAssetReference.dag_id, TaskOutletAssetReference.task_id)
        ):
            producers.setdefault(asset_id, []).append(f"{dag_id}.{task_id}")
        consumers: dict[int, list[str]] = {}
        for asset_id, dag_id in session.execute(
            select(DagScheduleAssetReference.asset_id, DagScheduleAssetReference.dag_id)
        ):
            consumers.setdefault(asset_id, []).append(dag_id)
        latest = dict(
            session.execute(
                select(AssetEvent.asset_id, func.max(AssetEvent.timestamp)).group_by(AssetEvent.asset_id)
            ).all()
        )
    table = Table(title=f"assets ({len(assets)})")
    for column in ("id", "name", "uri", "group", "producers", "consumers", "last event"):
        table.add_column(column, overflow="fold")
    for a in assets:
        when = latest.get(a.id)
        table.add_row(
            str(a.id),
            a.name,
            a.uri,
            a.group,
            ", ".join(sorted(producers.get(a.id, []))),
            ", ".join(sorted(consumers.get(a.id, []))),
            when.isoformat(timespec="seconds") if when else "",
        )
    console.print(table)


@app.command("events")
def events_cmd(
    ctx: typer.Context,
    name: str | None = NAME,
    uri: str | None = URI,
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="How many of the latest events."),
) -> None:
    """List the latest asset events (of one asset with --name/--uri), newest first, with the runs they created."""
    db = app_state(ctx).migrated_db()
    with db.read_session() as session:
        query = select(AssetEvent, AssetModel).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        if name is not None or uri is not None:
            query = query.where(AssetEvent.asset_id == find_asset(session, uri=uri, name=name).id)
        rows = [
            (event, asset)
            for event, asset in session.execute(
                query.order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc()).limit(limit)
            ).all()
        ]
        session.expunge_all()  # read after the session ends
        created: dict[int, list[str]] = {}
        for event_id, dag_id, run_id in session.execute(
            select(DagRunAssetEvent.event_id, DagRun.dag_id, DagRun.run_id)
            .join(DagRun, DagRun.id == DagRunAssetEvent.dag_run_id)
            .where(DagRunAssetEvent.event_id.in_([e.id for e, _ in rows]))
        ):
            created.setdefault(event_id, []).append(f"{dag_id}/{run_id}")
    table = Table(title=f"asset events ({len(rows)})")
    for column in ("id", "time", "asset", "source", "extra", "triggered runs"):
        table.add_column(column, overflow="fold")
    for event, asset in rows:
        source = (
            f"{event.source_dag_id}.{event.source_task_id} ({event.source_run_id})"
            if event.source_dag_id
            else "external"
        )
        table.add_row(
            str(event.id),
            event.timestamp.isoformat(timespec="seconds"),
            asset.uri,
            source,
            str(event.extra or {}),
            ", ".join(created.get(event.id, [])),
        )
    console.print(table)


@app.command("materialize")
def materialize_cmd(ctx: typer.Context, name: str | None = NAME, uri: str | None = URI) -> None:
    """Run the DAG that produces an asset (a manual run): exit 1 unless exactly one DAG has a task updating it."""
    from headrace.scheduler.runs import trigger_dag

    if name is None and uri is None:
        raise fail("name the asset with --name or --uri")
    state = app_state(ctx)
    db = state.migrated_db()
    with db.session() as session:
        asset = find_asset(session, uri=uri, name=name)
        dag_ids = sorted(
            set(
                session.scalars(
                    select(TaskOutletAssetReference.dag_id).where(TaskOutletAssetReference.asset_id == asset.id)
                )
            )
        )
        if len(dag_ids) != 1:
            raise fail(
                f"asset {asset.uri!r} is produced by {len(dag_ids)} DAGs ({', '.join(dag_ids) or 'none'}); "
                "materialize needs exactly one (trigger the one you mean with `headrace dags trigger`)"
            )
        run = trigger_dag(session, dag_ids[0], now=datetime.now(UTC))
        console.print(f"created DAG run {run.run_id} of {dag_ids[0]} to materialize asset {asset.uri}")
