"""DAG runs: scheduled creation (catchup, max_active_runs), trigger, backfill, start and finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headrace import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagModel
from headrace.exceptions import DagNotFound, DagRunAlreadyExists, DagRunConfError, ScheduleError
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.runs import create_backfill, create_runs, finish_runs, start_queued_runs, trigger_dag
from headrace.states import DagRunState
from headrace.states import TaskInstanceState as TI

from .conftest import NOW, move_ti, runs, store_dags, tis


def daily(dag_id: str = "daily", *, catchup: bool, max_active_runs: int | None = None) -> DAG:
    with DAG(
        dag_id, schedule="@daily", start_date=datetime(2024, 1, 1), catchup=catchup, max_active_runs=max_active_runs
    ) as dag:
        EmptyOperator(task_id="a", retries=2, priority_weight=5, pool="default_pool") >> EmptyOperator(task_id="b")
    return dag


def test_catchup_creates_every_missed_interval(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=True))
    with db.session() as session:
        assert create_runs(session, NOW) == 4  # "@daily" fires at 00:00 of Jan 1, 2, 3 and 4 (NOW is Jan 4, 00:30)
    assert [r.run_id for r in runs(db)] == [f"scheduled__2024-01-0{d}T00:00:00+00:00" for d in (1, 2, 3, 4)]
    run = runs(db)[0]
    # Airflow 3's CronTriggerTimetable: the logical date is the fire time, the data interval that instant
    assert run.state == "queued" and run.data_interval_start == run.data_interval_end == datetime(
        2024, 1, 1, tzinfo=UTC
    )
    a = tis(db, run.run_id)["a"]
    # priority_weight 5 plus b's 1: Airflow's default weight_rule "downstream"
    assert (a.state, a.max_tries, a.priority_weight, a.pool, a.try_number) == ("none", 2, 6, "default_pool", 0)
    with db.session() as session:
        dag = session.get(DagModel, "daily")
        assert dag is not None and dag.next_logical_date == datetime(2024, 1, 5, tzinfo=UTC)
        assert dag.next_run_after == datetime(2024, 1, 5, tzinfo=UTC)
        assert create_runs(session, NOW) == 0  # nothing new is due


def test_no_catchup_creates_only_the_latest_interval(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=False))
    with db.session() as session:
        assert create_runs(session, NOW) == 1
        assert create_runs(session, NOW + timedelta(days=3)) == 1  # missed days are skipped
    assert [r.logical_date for r in runs(db)] == [datetime(2024, 1, 4, tzinfo=UTC), datetime(2024, 1, 7, tzinfo=UTC)]


def test_max_active_runs_limits_creation_and_start(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=True, max_active_runs=2))
    with db.session() as session:
        assert create_runs(session, NOW) == 2
        assert start_queued_runs(session, NOW) == 2
        assert create_runs(session, NOW) == 0
    first = runs(db)[0]
    for ti in tis(db, first.run_id).values():
        move_ti(db, ti.id, TI.SUCCESS)
    with db.session() as session:
        assert finish_runs(session, NOW, cache=DagCache()) == 1
        assert create_runs(session, NOW) == 1  # the third interval, now that a slot is free
    assert len(runs(db)) == 3


def test_paused_dag_gets_no_runs(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=True))
    with db.session() as session:
        session.get(DagModel, "daily").is_paused = True  # type: ignore[union-attr]
    with db.session() as session:
        assert create_runs(session, NOW) == 0


def test_start_queued_runs_oldest_first(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=True, max_active_runs=1))
    with db.session() as session:
        create_backfill(session, "daily", datetime(2023, 12, 1, tzinfo=UTC), datetime(2023, 12, 3, tzinfo=UTC), now=NOW)
        assert start_queued_runs(session, NOW) == 1
        assert start_queued_runs(session, NOW) == 0
    assert [r.state for r in runs(db)] == ["running", "queued", "queued"]


def test_trigger_dag(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=False))
    with db.session() as session:
        run = trigger_dag(session, "daily", conf={"x": 1}, now=NOW)
    assert run.run_id == "manual__2024-01-04T00:30:00+00:00" and run.run_type == "manual"
    assert run.conf == {"x": 1} and run.state == "queued"
    assert set(tis(db, run.run_id)) == {"a", "b"}


def test_trigger_dag_errors(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=False))
    with db.session() as session:
        with pytest.raises(DagNotFound) as err:
            trigger_dag(session, "nope", now=NOW)
        assert str(err.value) == "DAG 'nope' not found"
        with pytest.raises(DagRunConfError, match="JSON object"):
            trigger_dag(session, "daily", conf=[1, 2], now=NOW)  # type: ignore[arg-type]
        with pytest.raises(DagRunConfError, match="JSON-serializable"):
            trigger_dag(session, "daily", conf={"when": object()}, now=NOW)
        trigger_dag(session, "daily", run_id="mine", now=NOW)
        with pytest.raises(DagRunAlreadyExists, match="'mine'"):
            trigger_dag(session, "daily", run_id="mine", now=NOW + timedelta(seconds=1))
        with pytest.raises(DagRunAlreadyExists, match="logical date"):
            trigger_dag(session, "daily", now=NOW)


def test_backfill_skips_existing_logical_dates(settings: Settings, db: Database) -> None:
    store_dags(settings, db, daily(catchup=False))
    with db.session() as session:
        create_runs(session, NOW)  # 2024-01-04
        made = create_backfill(
            session, "daily", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 4, 12, tzinfo=UTC), now=NOW
        )
    assert [r.run_id for r in made] == ["backfill__2024-01-02T00:00:00+00:00", "backfill__2024-01-03T00:00:00+00:00"]
    assert all(r.run_type == "backfill" for r in made)


def test_backfill_errors(settings: Settings, db: Database) -> None:
    with DAG("manual_only") as dag:
        EmptyOperator(task_id="a")
    store_dags(settings, db, dag)
    with db.session() as session:
        with pytest.raises(ScheduleError, match="no schedule"):
            create_backfill(session, "manual_only", NOW, NOW, now=NOW)
        with pytest.raises(DagNotFound):
            create_backfill(session, "nope", NOW, NOW, now=NOW)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (TI.SUCCESS, TI.SUCCESS, DagRunState.SUCCESS),
        (TI.SUCCESS, TI.SKIPPED, DagRunState.SUCCESS),
        (TI.SUCCESS, TI.FAILED, DagRunState.FAILED),
        (TI.FAILED, TI.UPSTREAM_FAILED, DagRunState.FAILED),
        (TI.FAILED, TI.SUCCESS, DagRunState.SUCCESS),  # only leaves count (b could be all_done)
    ],
)
def test_finish_runs_by_leaf_states(settings: Settings, db: Database, a: TI, b: TI, expected: DagRunState) -> None:
    store_dags(settings, db, daily(catchup=False))
    with db.session() as session:
        run = trigger_dag(session, "daily", now=NOW)
        start_queued_runs(session, NOW)
    cache = DagCache()
    move_ti(db, tis(db)["a"].id, a)
    with db.session() as session:
        assert finish_runs(session, NOW, cache=cache) == 0  # b not finished yet
    move_ti(db, tis(db)["b"].id, b)
    with db.session() as session:
        assert finish_runs(session, NOW, cache=cache) == 1
    [done] = runs(db)
    assert done.state == expected.value and done.end_date == NOW and done.id == run.id
