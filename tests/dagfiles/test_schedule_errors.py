"""Schedules the scheduler cannot use are DAG import errors, in the child and again where they are stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from headrace.authoring.dag import DAG
from headrace.authoring.schedules import DagRunInfo, DataInterval, TimeRestriction, Timetable
from headrace.authoring.timetables import CronTriggerTimetable
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import SerializedDag, UnreadableTimetable, check_schedule, serialize_dag
from headrace.db.engine import Database
from headrace.db.models import DagModel, ImportError_
from headrace.exceptions import ScheduleError
from headrace.operators import EmptyOperator

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class Everyday(Timetable):
    """A custom timetable in an importable module (this one): the scheduler rebuilds it by import path."""

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return DagRunInfo.exact(restriction.earliest or NOW)


class MyCron(CronTriggerTimetable):
    """A subclass of a built-in timetable: it deserializes as itself (``deserialize`` is a classmethod)."""


class Lossy(Timetable):
    """Forgets its argument when serialized: the scheduler would run something else than the author wrote."""

    def __init__(self, hour: int = 0) -> None:
        self.hour = hour

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lossy) and other.hour == self.hour

    def __hash__(self) -> int:
        return self.hour


def make(dag_id: str, schedule: Any) -> DAG:
    with DAG(dag_id, schedule=schedule, start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="a")
    return dag


def test_built_in_schedules_pass_the_check() -> None:
    for schedule in (None, "@once", "@daily", "*/5 * * * *"):
        dag = make("fine", schedule)
        check_schedule(dag, serialize_dag(dag), NOW)


@pytest.mark.parametrize("timetable", [Everyday(), MyCron("@daily", timezone="UTC")], ids=["custom", "subclass"])
def test_a_custom_timetable_in_an_importable_module_passes_and_reads_back_as_itself(timetable: Timetable) -> None:
    dag = make("custom", timetable)
    data = serialize_dag(dag)
    check_schedule(dag, data, NOW)
    assert data["timetable"]["__type"] == f"{__name__}.{type(timetable).__name__}"
    sdag = SerializedDag.from_dict(data)
    assert type(sdag.timetable) is type(timetable) and sdag.timetable == timetable


def test_a_timetable_defined_in_a_dag_file_is_refused_with_the_dag_line() -> None:
    local = type("Local", (Everyday,), {"__module__": "headrace_dag_0123456789ab"})
    dag = make("custom", local())
    with pytest.raises(ScheduleError, match="the timetable class Local is defined in a DAG file") as info:
        check_schedule(dag, serialize_dag(dag), NOW)
    assert (info.value.fileloc, info.value.lineno) == (dag.fileloc, dag.lineno)


def test_a_timetable_that_does_not_read_back_is_refused() -> None:
    dag = make("lossy", Lossy(hour=5))
    with pytest.raises(ScheduleError, match="Lossy does not read back as it was written"):
        check_schedule(dag, serialize_dag(dag), NOW)


def test_a_schedule_that_raises_when_evaluated_is_refused() -> None:
    dag = make("feb30", "0 0 30 2 *")
    with pytest.raises(ScheduleError, match="'0 0 30 2 \\*' cannot be evaluated: CroniterBadDateError"):
        check_schedule(dag, serialize_dag(dag), NOW)


def test_an_unreadable_stored_timetable_keeps_the_graph() -> None:
    data = serialize_dag(make("stale", "@daily"))
    data["timetable"] = {"type": "from_the_future"}
    sdag = SerializedDag.from_dict(data)
    assert isinstance(sdag.timetable, UnreadableTimetable) and sdag.task_ids == ["a"]
    assert sdag.timetable.serialize() == {"type": "from_the_future"}  # the version's hash is unchanged
    with pytest.raises(ScheduleError, match="from_the_future"):
        sdag.timetable.next_run_info(None, start_date=None, end_date=None, catchup=False, now=NOW)
    assert sdag.timetable.infer_manual_data_interval(run_after=NOW) == DataInterval(NOW, NOW)  # triggering works


def test_storing_guards_what_the_child_did_not_check(settings: Settings, db: Database) -> None:
    """Data that reaches ``store_result`` unchecked: each bad DAG is an import error, the good one is stored."""
    good, feb30, stale = make("good", "@daily"), make("feb30", "0 0 30 2 *"), make("stale", "@daily")
    unreadable = serialize_dag(stale)
    unreadable["timetable"] = {"type": "from_the_future"}
    result = ParseResult(good.fileloc, dags=[serialize_dag(feb30), unreadable, serialize_dag(good)])
    with db.session() as session:
        assert DagProcessor(settings, db).store_result(session, result, 0.0, 0, NOW) == 1
    with db.session() as session:
        assert [d.dag_id for d in session.scalars(select(DagModel))] == ["good"]
        errors = sorted(session.scalars(select(ImportError_)), key=lambda e: e.message)
    assert [e.lineno for e in errors] == [feb30.lineno, stale.lineno]
    assert "DAG 'feb30'" in errors[0].message and "cannot be evaluated" in errors[0].message
    assert "DAG 'stale'" in errors[1].message and "from_the_future" in errors[1].message
