"""Assets through the scheduler (SQLite and PostgreSQL): a producing task's success records an asset event
(with the extra it set) and creates asset-triggered runs of the DAGs scheduled on it — AND and OR
conditions, an alias, an external event — whose tasks see the events that triggered them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.asset_models import AssetDagRunQueue, AssetEvent, AssetModel, DagRunAssetEvent
from headrace.db.assets import create_external_event
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, ImportError_, TaskInstance, XCom
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

DAG_FILE = """
from datetime import datetime

from headrace import DAG, Asset, AssetAlias, task

a = Asset("s3://bucket/a.csv")
b = Asset(name="b", uri="s3://bucket/b.csv")
alias = AssetAlias("dynamic")

with DAG("make_a", schedule=None, start_date=datetime(2024, 1, 1)):

    @task(outlets=[a])
    def produce(outlet_events=None):
        outlet_events[a].extra = {"rows": 3}

    produce()

with DAG("make_b", schedule=None, start_date=datetime(2024, 1, 1)):

    @task(outlets=[b, alias])
    def produce_b(outlet_events=None):
        outlet_events[b].extra = {"rows": 7}
        outlet_events[alias].add(Asset("s3://bucket/c.csv"), extra={"via": "alias"})

    produce_b()

with DAG("needs_all", schedule=[a, b]):

    @task
    def consume(triggering_asset_events=None):
        return sorted([e.asset.uri, e.extra.get("rows"), e.source_dag_id] for e in
                      [ev for asset in triggering_asset_events for ev in triggering_asset_events[asset]])

    consume()

with DAG("needs_any", schedule=a | b):

    @task
    def consume_any(triggering_asset_events=None, inlet_events=None):
        return sorted(asset.uri for asset in triggering_asset_events)

    consume_any()

with DAG("on_alias", schedule=alias):

    @task(inlets=[Asset("s3://bucket/c.csv")])
    def consume_alias(inlet_events=None):
        return [e.extra for e in inlet_events[Asset("s3://bucket/c.csv")]]

    consume_alias()
"""


def _runs(db: Database, dag_id: str) -> list[tuple[str, str]]:
    with db.read_session() as session:
        return [
            (r.run_type, r.state)
            for r in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id))
        ]


def _until(settings: Settings, db: Database, done: Callable[[], bool]) -> None:
    if not run_scheduler_until(settings, db, done, timeout=120):
        with db.read_session() as session:
            runs = session.execute(select(DagRun.dag_id, DagRun.run_type, DagRun.state)).all()
            tis = session.execute(select(TaskInstance.dag_id, TaskInstance.task_id, TaskInstance.state)).all()
        raise AssertionError(f"runs {runs}; task instances {tis}")


def _finished(db: Database, **expected: int) -> Callable[[], bool]:
    def done() -> bool:
        for dag_id, count in expected.items():
            runs = _runs(db, dag_id)
            if len(runs) != count or any(state not in ("success", "failed") for _, state in runs):
                return False
        return True

    return done


def _xcoms(db: Database, dag_id: str) -> list[object]:
    with db.read_session() as session:
        rows = session.scalars(
            select(XCom.value).where(XCom.dag_id == dag_id, XCom.key == "return_value").order_by(XCom.id)
        )
        return [json.loads(v) for v in rows]


def test_producer_to_consumers_and_or_alias_and_external_event(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(settings, "assets.py", DAG_FILE)
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        assert list(session.scalars(select(ImportError_.message))) == []
        for model in session.scalars(select(DagModel)):
            model.is_paused = False
        trigger_dag(session, "make_a", now=datetime.now(UTC))

    # a alone: the OR consumer runs, the AND consumer waits for b
    _until(settings, db, _finished(db, make_a=1, needs_any=1))
    assert _runs(db, "make_a") == [("manual", "success")]
    assert _runs(db, "needs_any") == [("asset_triggered", "success")]
    assert _runs(db, "needs_all") == []
    assert _xcoms(db, "needs_any") == [["s3://bucket/a.csv"]]
    with db.read_session() as session:
        event = session.execute(
            select(AssetEvent.extra, AssetEvent.source_dag_id, AssetEvent.source_task_id).join(
                AssetModel, AssetModel.id == AssetEvent.asset_id
            )
        ).one()
    assert tuple(event) == ({"rows": 3}, "make_a", "produce")

    # b (and c through the alias): the AND consumer now runs once, with both events; OR runs again; alias runs
    with db.session() as session:
        trigger_dag(session, "make_b", now=datetime.now(UTC))
    _until(settings, db, _finished(db, make_b=1, needs_all=1, needs_any=2, on_alias=1))
    assert _runs(db, "needs_all") == [("asset_triggered", "success")]
    assert _xcoms(db, "needs_all") == [[["s3://bucket/a.csv", 3, "make_a"], ["s3://bucket/b.csv", 7, "make_b"]]]
    assert _xcoms(db, "needs_any")[-1] == ["s3://bucket/b.csv"]
    assert _xcoms(db, "on_alias") == [[{"via": "alias"}]]
    with db.read_session() as session:
        alias_event = session.execute(
            select(AssetModel.uri, AssetEvent.source_alias)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == "s3://bucket/c.csv")
        ).one()
        assert tuple(alias_event) == ("s3://bucket/c.csv", "dynamic")

    # an event from outside (as the API writes it) triggers the OR consumer again, and only it
    with db.session() as session:
        create_external_event(session, uri="s3://bucket/a.csv", name=None, extra={"from": "api"}, at=datetime.now(UTC))
    _until(settings, db, _finished(db, needs_any=3))
    assert _runs(db, "needs_all") == [("asset_triggered", "success")]
    assert _runs(db, "needs_any")[-1] == ("asset_triggered", "success")
    with db.read_session() as session:
        last = session.scalars(
            select(DagRun.id).where(DagRun.dag_id == "needs_any").order_by(DagRun.id.desc()).limit(1)
        ).one()
        consumed = session.execute(
            select(AssetEvent.extra, AssetEvent.source_dag_id)
            .join(DagRunAssetEvent, DagRunAssetEvent.event_id == AssetEvent.id)
            .where(DagRunAssetEvent.dag_run_id == last)
        ).all()
    assert [tuple(c) for c in consumed] == [({"from": "api"}, None)]


def test_the_penguins_report_triggers_the_bundled_consumer(settings: Settings, db: Database) -> None:
    from headrace.scheduler.start import EXAMPLE_DAGS

    settings = settings.with_overrides(FAST)
    for name in ("example_penguins_report.py", "example_penguins_asset_consumer.py"):
        write_dag(settings, name, (EXAMPLE_DAGS / name).read_text())
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        assert list(session.scalars(select(ImportError_.message))) == []
        for model in session.scalars(select(DagModel)):
            model.is_paused = False
        trigger_dag(session, "example_penguins_report", now=datetime.now(UTC))

    def done() -> bool:  # the daily schedule adds a run of its own (catchup=False: the latest interval)
        with db.read_session() as session:
            queued = session.scalar(select(func.count()).select_from(AssetDagRunQueue))
        runs = _runs(db, "example_penguins_report") + _runs(db, "example_penguins_asset_consumer")
        consumed = any(r[0] == "asset_triggered" for r in runs)
        return consumed and queued == 0 and all(state in ("success", "failed") for _, state in runs)

    _until(settings, db, done)
    assert set(_runs(db, "example_penguins_report")) <= {("manual", "success"), ("scheduled", "success")}
    assert set(_runs(db, "example_penguins_asset_consumer")) == {("asset_triggered", "success")}
    paths = [p for value in _xcoms(db, "example_penguins_asset_consumer") for p in value]  # type: ignore[attr-defined]
    assert paths and all(p.endswith(".md") for p in paths)
    assert "Heaviest species on average: **Gentoo**" in Path(paths[0]).read_text()
