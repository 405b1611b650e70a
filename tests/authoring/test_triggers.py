"""Deferral's authoring side: defer(), resume_execution, the standard triggers (run in a real event loop)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from headrace import DAG
from headrace.authoring.task import BaseOperator
from headrace.exceptions import DagDefinitionError, TaskDeferralError, TaskDeferralTimeout, TaskDeferred
from headrace.triggers import DagStateTrigger, DateTimeTrigger, FileTrigger, TimeDeltaTrigger, TriggerEvent
from headrace.types import Context


class Deferring(BaseOperator):
    def execute(self, context: Context) -> Any:
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=5)), method_name="done", kwargs={"n": 1}, timeout=30)

    def done(self, context: Context, event: Any = None, n: int = 0) -> Any:
        return (event, n)


def test_defer_raises_task_deferred_with_what_the_task_resumes_with() -> None:
    with DAG("d"):
        op = Deferring(task_id="t")
    with pytest.raises(TaskDeferred) as raised:
        op.execute({})
    assert not isinstance(raised.value, Exception)  # a BaseException: `except Exception` does not swallow it
    assert (raised.value.method_name, raised.value.kwargs, raised.value.timeout) == (
        "done",
        {"n": 1},
        timedelta(seconds=30),
    )
    classpath, kwargs = raised.value.trigger.serialize()
    assert classpath == "headrace.triggers.DateTimeTrigger"  # a TimeDeltaTrigger is stored as its moment
    assert kwargs["moment"] > datetime.now(UTC)
    with pytest.raises(DagDefinitionError, match="no such method"):
        op.defer(trigger=TimeDeltaTrigger(timedelta(seconds=1)), method_name="missing")


def test_resume_execution_calls_the_method_or_raises_the_trigger_failure() -> None:
    with DAG("d"):
        op = Deferring(task_id="t")
    assert op.resume_execution("done", {"event": "e", "n": 2}, {}) == ("e", 2)
    with pytest.raises(TaskDeferralTimeout):
        op.resume_execution("__fail__", {"error": "Trigger timeout"}, {})
    with pytest.raises(TaskDeferralError, match="Trigger failure: boom"):
        op.resume_execution("__fail__", {"error": "Trigger failure: boom", "traceback": ["x\n"]}, {})


async def _first(trigger: Any) -> TriggerEvent:
    async for event in trigger.run():
        return event  # type: ignore[no-any-return]
    raise AssertionError("no event")


def test_date_time_and_file_triggers_fire(tmp_path: Path) -> None:
    moment = datetime.now(UTC) + timedelta(seconds=0.2)
    assert asyncio.run(_first(DateTimeTrigger(moment))) == TriggerEvent(moment)
    path = tmp_path / "in" / "a.csv"

    async def land_then_wait() -> TriggerEvent:
        async def land() -> None:
            await asyncio.sleep(0.2)
            path.parent.mkdir()
            path.write_text("x")

        task = asyncio.create_task(land())
        event = await _first(FileTrigger(str(tmp_path / "in" / "*.csv"), poke_interval=0.05))
        await task
        return event

    assert asyncio.run(land_then_wait()) == TriggerEvent(True)


def test_bad_trigger_arguments_are_refused_by_name() -> None:
    with pytest.raises(DagDefinitionError, match="timezone-aware"):
        DateTimeTrigger(datetime(2030, 1, 1))
    with pytest.raises(DagDefinitionError, match="end_from_trigger=True is not supported"):
        DateTimeTrigger(datetime.now(UTC), end_from_trigger=True)
    with pytest.raises(DagDefinitionError, match="run_ids"):
        DagStateTrigger("d", ["success"], run_ids=[])
