"""Asset-triggered runs (headrace.scheduler.asset_runs): the asset DAG-run queue, AND/OR conditions, the
consumed-event window, AssetOrTimeSchedule, and the compare-and-set claim that keeps two schedulers from
creating the same run twice (two sessions at once on PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from headrace import DAG, Asset
from headrace.config import Settings
from headrace.db.asset_models import AssetDagRunQueue, AssetEvent, DagRunAssetEvent, DagScheduleAssetReference
from headrace.db.assets import EventSource, create_external_event, record_asset_events
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun
from headrace.operators import EmptyOperator
from headrace.scheduler.asset_runs import create_asset_runs, queued_asset_run_count
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.runs import create_runs
from headrace.timetables import AssetOrTimeSchedule, CronTriggerTimetable

from .conftest import NOW, store_dags

A, B = Asset("s3://data/a"), Asset("s3://data/b")


def _dags() -> list[DAG]:
    with DAG("producer", schedule=None, start_date=datetime(2024, 1, 1)) as producer:
        EmptyOperator(task_id="make", outlets=[A, B])
    with DAG("all_of", schedule=[A, B]) as all_of:
        EmptyOperator(task_id="t")
    with DAG("any_of", schedule=A | B) as any_of:
        EmptyOperator(task_id="t")
    return [producer, all_of, any_of]


def _store(settings: Settings, db: Database, *dags: DAG) -> None:
    store_dags(settings, db, *dags)
    with db.session() as session:
        for model in session.scalars(select(DagModel)):
            model.is_paused = False


def _event(db: Database, asset: Asset, at: datetime, extra: dict[str, object] | None = None) -> None:
    with db.session() as session:
        create_external_event(session, uri=asset.uri, name=None, extra=extra, at=at)


def _runs(db: Database, dag_id: str) -> list[DagRun]:
    with db.read_session() as session:
        rows = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id)).all()
        session.expunge_all()
        return list(rows)


def _create(db: Database, now: datetime = NOW) -> int:
    with db.session() as session:
        return create_asset_runs(session, now, cache=DagCache())


def test_parsing_records_consumers_and_conditions_decide(settings: Settings, db: Database) -> None:
    _store(settings, db, *_dags())
    with db.read_session() as session:
        consumers = sorted(session.scalars(select(DagScheduleAssetReference.dag_id)))
    assert consumers == ["all_of", "all_of", "any_of", "any_of"]
    _event(db, A, NOW - timedelta(minutes=5), {"n": 1})
    with db.read_session() as session:
        assert queued_asset_run_count(session) == 2
    assert _create(db) == 1  # OR is met by a; AND waits for b
    assert [(r.run_type, r.state) for r in _runs(db, "any_of")] == [("asset_triggered", "queued")]
    assert _runs(db, "all_of") == []
    run = _runs(db, "any_of")[0]
    assert run.logical_date == NOW - timedelta(minutes=5)
    assert run.run_id == f"asset_triggered__{(NOW - timedelta(minutes=5)).isoformat()}"
    assert _create(db) == 0  # consumed: nothing more

    _event(db, B, NOW - timedelta(minutes=1))
    assert _create(db) == 2
    all_run = _runs(db, "all_of")[0]
    with db.read_session() as session:
        consumed = sorted(
            session.scalars(
                select(AssetEvent.timestamp)
                .join(DagRunAssetEvent, DagRunAssetEvent.event_id == AssetEvent.id)
                .where(DagRunAssetEvent.dag_run_id == all_run.id)
            )
        )
        second_any = _runs(db, "any_of")[1]
        consumed_any = list(
            session.scalars(
                select(AssetEvent.timestamp)
                .join(DagRunAssetEvent, DagRunAssetEvent.event_id == AssetEvent.id)
                .where(DagRunAssetEvent.dag_run_id == second_any.id)
            )
        )
        assert session.scalar(select(func.count()).select_from(AssetDagRunQueue)) == 0
    # the AND run consumed both events; the second OR run only the one after its previous run
    assert consumed == [NOW - timedelta(minutes=5), NOW - timedelta(minutes=1)]
    assert consumed_any == [NOW - timedelta(minutes=1)]


def test_producing_try_queues_for_unpaused_consumers_only(settings: Settings, db: Database) -> None:
    _store(settings, db, *_dags())
    with db.session() as session:
        any_of = session.get(DagModel, "any_of")
        assert any_of is not None
        any_of.is_paused = True
    with db.session() as session:
        record_asset_events(
            session,
            [{"name": A.name, "uri": A.uri, "extra": {"rows": 1}}],
            source=EventSource("producer", "make", "manual__x"),
            at=NOW,
        )
    with db.read_session() as session:
        assert list(session.scalars(select(AssetDagRunQueue.target_dag_id))) == ["all_of"]
        event = session.scalars(select(AssetEvent)).one()
        assert (event.source_dag_id, event.source_task_id, event.source_run_id, event.extra) == (
            "producer",
            "make",
            "manual__x",
            {"rows": 1},
        )


def test_asset_or_time_schedule_runs_on_both(settings: Settings, db: Database) -> None:
    with DAG(
        "both",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 0 * * *", timezone="UTC"), assets=[A]),
        start_date=datetime(2024, 1, 1),
        catchup=False,
    ) as dag:
        EmptyOperator(task_id="t")
    _store(settings, db, dag)
    with db.session() as session:
        assert create_runs(session, NOW) == 1
    _event(db, A, NOW)
    assert _create(db, NOW + timedelta(seconds=1)) == 1
    assert sorted(r.run_type for r in _runs(db, "both")) == ["asset_triggered", "scheduled"]


def test_unknown_asset_event_is_refused(settings: Settings, db: Database) -> None:
    from headrace.exceptions import AssetNotFound

    _store(settings, db, *_dags())
    with db.session() as session, pytest.raises(AssetNotFound, match="no asset with uri 's3://nope'"):
        create_external_event(session, uri="s3://nope", name=None, extra=None, at=NOW)


def test_the_same_events_never_make_two_runs_from_two_sessions(settings: Settings, db: Database) -> None:
    """Two schedulers claim the same queue: while the first's claim is not committed the second skips the rows it
    locked and creates nothing, without waiting (PostgreSQL), or runs after it (SQLite's one writer); after the
    commit the rows are gone: exactly one run either way."""
    _store(settings, db, *_dags())
    _event(db, A, NOW - timedelta(minutes=1))
    second: list[int] = []
    with db.session() as first:
        assert create_asset_runs(first, NOW, cache=DagCache()) == 1  # claimed, not committed yet
        if db.engine.dialect.name == "postgresql":
            thread = threading.Thread(target=lambda: second.append(_create(db)))
            thread.start()
            thread.join(timeout=30)
            assert not thread.is_alive()  # it did not wait for the first's claim
    second.append(_create(db))
    assert second == ([0, 0] if db.engine.dialect.name == "postgresql" else [0])
    assert len(_runs(db, "any_of")) == 1
