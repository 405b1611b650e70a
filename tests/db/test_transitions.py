from __future__ import annotations

from datetime import UTC, datetime
from threading import Barrier, Thread

import pytest
from sqlalchemy import select

from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersion, TaskInstance
from headrace.db.transitions import set_run_state, set_ti_state
from headrace.exceptions import InvalidTransition
from headrace.states import DagRunState, TaskInstanceState

TI = TaskInstanceState
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _make_ti(db: Database, state: TaskInstanceState = TI.SCHEDULED) -> int:
    with db.session() as s:
        v = DagVersion(dag_id="d", version_hash="h", serialized={}, created_at=NOW)
        s.add(v)
        s.flush()
        run = DagRun(
            dag_id="d", run_id="r", run_type="manual", state="running", conf={}, dag_version_id=v.id, queued_at=NOW
        )
        s.add(run)
        s.flush()
        ti = TaskInstance(dag_run_id=run.id, dag_id="d", run_id="r", task_id="t", state=state.value)
        s.add(ti)
        s.flush()
        return ti.id


def test_compare_and_set_wins_once(db: Database) -> None:
    ti_id = _make_ti(db)
    with db.session() as s:
        assert set_ti_state(s, ti_id, TI.SCHEDULED, TI.QUEUED, try_number=TaskInstance.try_number + 1)
    with db.session() as s:
        # Second writer expected the old state: loses, nothing written.
        assert not set_ti_state(s, ti_id, TI.SCHEDULED, TI.QUEUED, try_number=TaskInstance.try_number + 1)
    with db.session() as s:
        ti = s.scalars(select(TaskInstance)).one()
        assert (ti.state, ti.try_number) == ("queued", 1)


def test_try_number_guard(db: Database) -> None:
    ti_id = _make_ti(db, TI.QUEUED)
    with db.session() as s:
        assert not set_ti_state(s, ti_id, TI.QUEUED, TI.RUNNING, expected_try_number=2)
        assert set_ti_state(s, ti_id, TI.QUEUED, TI.RUNNING, expected_try_number=0)


def test_forbidden_transition_raises_before_writing(db: Database) -> None:
    ti_id = _make_ti(db, TI.SUCCESS)
    with pytest.raises(InvalidTransition) as err:
        with db.session() as s:
            set_ti_state(s, ti_id, TI.SUCCESS, TI.RUNNING)
    assert err.value.expected == "success" and err.value.new == "running"
    with db.session() as s:
        assert s.scalars(select(TaskInstance.state)).one() == "success"


def test_racing_writers_exactly_one_wins(db: Database) -> None:
    ti_id = _make_ti(db, TI.QUEUED)
    barrier = Barrier(4)
    wins: list[bool] = []

    def claim() -> None:
        barrier.wait()
        with db.session() as s:
            wins.append(set_ti_state(s, ti_id, TI.QUEUED, TI.RUNNING))

    threads = [Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]


def test_run_state(db: Database) -> None:
    _make_ti(db)
    with db.session() as s:
        run_pk = s.scalars(select(DagRun.id)).one()
        assert set_run_state(s, run_pk, DagRunState.RUNNING, DagRunState.SUCCESS, end_date=NOW)
        assert not set_run_state(s, run_pk, DagRunState.RUNNING, DagRunState.FAILED)
    with db.session() as s:
        run = s.scalars(select(DagRun)).one()
        assert run.state == "success" and run.end_date == NOW


def test_reschedule_date_lives_only_along_a_pokes_path(db: Database) -> None:
    """``reschedule_date`` stays through up_for_reschedule → scheduled → queued (→ scheduled when given back,
    the try_number kept) → running, and any other change clears it."""
    from headrace.db.transitions import requeue_ti

    due = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    ti_id = _make_ti(db, TI.RUNNING)
    with db.session() as s:
        s.get(TaskInstance, ti_id).try_number = 1  # type: ignore[union-attr]
    path = [
        (TI.RUNNING, TI.UP_FOR_RESCHEDULE, {"reschedule_date": due}),
        (TI.UP_FOR_RESCHEDULE, TI.SCHEDULED, {}),
        (TI.SCHEDULED, TI.QUEUED, {}),
    ]
    for old, new, values in path:
        with db.session() as s:
            assert set_ti_state(s, ti_id, old, new, **values)
        with db.session() as s:
            assert s.get(TaskInstance, ti_id).reschedule_date == due  # type: ignore[union-attr]
    with db.session() as s:  # a queued poke given back keeps its try_number (it was not raised when queued)
        assert requeue_ti(s, ti_id, 1)
    with db.session() as s:
        ti = s.get(TaskInstance, ti_id)
        assert ti is not None and (ti.state, ti.try_number, ti.reschedule_date) == ("scheduled", 1, due)
    with db.session() as s:
        assert set_ti_state(s, ti_id, TI.SCHEDULED, TI.QUEUED)
        assert set_ti_state(s, ti_id, TI.QUEUED, TI.RUNNING)
        assert set_ti_state(s, ti_id, TI.RUNNING, TI.UP_FOR_RETRY)  # e.g. a zombie: not a poke any more
    with db.session() as s:
        assert s.get(TaskInstance, ti_id).reschedule_date is None  # type: ignore[union-attr]
