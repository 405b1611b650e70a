"""Helpers for scheduler tests: store DAGs built in the test, walk task instances to a state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from headrace.authoring.dag import DAG
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.db.transitions import set_ti_state
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.request import TryRequest

NOW = datetime(2024, 1, 4, 0, 30, tzinfo=UTC)

PATHS: dict[TI, list[TI]] = {
    TI.NONE: [],
    TI.SCHEDULED: [TI.SCHEDULED],
    TI.QUEUED: [TI.SCHEDULED, TI.QUEUED],
    TI.RUNNING: [TI.SCHEDULED, TI.QUEUED, TI.RUNNING],
    TI.SUCCESS: [TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.SUCCESS],
    TI.FAILED: [TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.FAILED],
    TI.UP_FOR_RETRY: [TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.UP_FOR_RETRY],
    TI.SKIPPED: [TI.SKIPPED],
    TI.UPSTREAM_FAILED: [TI.UPSTREAM_FAILED],
    TI.REMOVED: [TI.REMOVED],
}


def store_dags(settings: Settings, db: Database, *dags: DAG, now: datetime = NOW) -> None:
    """Store ``dags`` as the DAG processor would after parsing their file."""
    processor = DagProcessor(settings, db)
    with db.session() as session:
        processor.store_result(
            session, ParseResult(dags[0].fileloc, dags=[serialize_dag(d) for d in dags]), 0.0, 0, now
        )


def move_ti(db: Database, ti_id: int, target: TI, **values: object) -> None:
    """Walk task instance ``ti_id`` from its state (none or on the way) to ``target`` through allowed transitions."""
    with db.session() as session:
        ti = session.get(TaskInstance, ti_id)
        assert ti is not None
        state = TI(ti.state)
        path = PATHS[target]
        for step in path[path.index(state) + 1 if state in path else 0 :]:
            extra = dict(values) if step is target else {}
            if step is TI.QUEUED:
                extra["try_number"] = TaskInstance.try_number + 1
            assert set_ti_state(session, ti_id, state, step, **extra)
            state = step


def tis(db: Database, run_id: str | None = None) -> dict[str, TaskInstance]:
    """``{task_id: TaskInstance}`` of one run (or of the only run)."""
    with db.session() as session:
        stmt = select(TaskInstance)
        if run_id is not None:
            stmt = stmt.where(TaskInstance.run_id == run_id)
        return {ti.task_id: ti for ti in session.scalars(stmt)}


def runs(db: Database) -> list[DagRun]:
    with db.session() as session:
        return list(session.scalars(select(DagRun).order_by(DagRun.logical_date, DagRun.id)))


class FakeExecutor:
    """Records requests; checks that each queued try is committed when it is handed over."""

    def __init__(self, db: Database, slots: int = 100) -> None:
        self.db = db
        self.slots = slots
        self.requests: list[TryRequest] = []
        self.events: list[object] = []
        self.started = self.terminated = False

    def start(self) -> None:
        self.started = True

    def open_slots(self) -> int:
        return self.slots - len(self.requests)

    def queue(self, request: TryRequest) -> None:
        with self.db.session() as session:  # another session: sees only committed rows
            ti = session.get(TaskInstance, request.ti_id)
            assert ti is not None and ti.state == TI.QUEUED.value and ti.try_number == request.try_number
        self.requests.append(request)

    def has(self, ti_id: int, try_number: int) -> bool:
        return any(r.ti_id == ti_id and r.try_number == try_number for r in self.requests)

    def sync(self) -> list[object]:
        events, self.events = self.events, []
        return events

    def sync_due_in(self) -> float | None:
        return None

    def fileno(self) -> int | None:
        return None

    def terminate(self) -> None:
        self.terminated = True


@pytest.fixture
def executor(db: Database) -> Iterator[FakeExecutor]:
    yield FakeExecutor(db)
