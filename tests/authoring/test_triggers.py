"""Deferral's authoring side: defer(), resume_execution, the standard triggers (run in a real event loop), and
start_from_trigger (what is serialized for the scheduler, the templates it renders, what is refused)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from headrace import DAG
from headrace.authoring import macros, xcom_serde
from headrace.authoring.dag_warnings import dag_warnings
from headrace.authoring.start_trigger import has_templates, render_trigger_kwargs, start_trigger_spec
from headrace.authoring.task import BaseOperator
from headrace.dagfiles.serialization import SerializedDag, serialize_dag
from headrace.exceptions import DagDefinitionError, TaskDeferralError, TaskDeferralTimeout, TaskDeferred
from headrace.triggers import (
    DagStateTrigger,
    DateTimeTrigger,
    FileTrigger,
    StartTriggerArgs,
    TimeDeltaTrigger,
    TriggerEvent,
)
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


class StartsInTriggerer(BaseOperator):
    start_trigger_args = StartTriggerArgs(
        trigger_cls="headrace.triggers.DateTimeTrigger",
        trigger_kwargs={"moment": "{{ data_interval_end + macros.timedelta(hours=1) }}"},
        next_method="done",
        timeout=60,
    )
    start_from_trigger = True

    def execute(self, context: Context) -> Any:
        raise AssertionError("never called")

    def done(self, context: Context, event: Any = None) -> Any:
        return event


def test_start_from_trigger_is_serialized_for_the_scheduler_and_rendered_with_the_context() -> None:
    with DAG("d", render_template_as_native_obj=True) as dag:
        op = StartsInTriggerer(task_id="t")
        other = StartsInTriggerer(task_id="u")
        assert other.start_trigger_args is not None and other.start_trigger_args.trigger_kwargs is not None
        other.start_trigger_args.trigger_kwargs["moment"] = "2030-01-01T00:00:00+00:00"  # its copy alone
    spec = SerializedDag.from_dict(serialize_dag(dag)).tasks["t"].start_trigger
    assert spec is not None
    assert StartsInTriggerer.start_trigger_args.trigger_kwargs == {  # type: ignore[union-attr]
        "moment": "{{ data_interval_end + macros.timedelta(hours=1) }}"
    }
    assert (spec["trigger_cls"], spec["next_method"], spec["timeout"], spec["native"]) == (
        "headrace.triggers.DateTimeTrigger",
        "done",
        60.0,
        True,
    )
    assert has_templates(spec["trigger_kwargs"]) and op.start_from_trigger
    end = datetime(2026, 1, 1, tzinfo=UTC)
    rendered = render_trigger_kwargs(spec["trigger_kwargs"], {"data_interval_end": end, "macros": macros}, native=True)
    # a native render keeps the datetime (stored with XCom's types), which rebuilds the trigger
    assert DateTimeTrigger(**xcom_serde.decode(rendered)).moment == end + timedelta(hours=1)
    text = render_trigger_kwargs(spec["trigger_kwargs"], {"data_interval_end": end, "macros": macros}, native=False)
    assert DateTimeTrigger(**text).moment == end + timedelta(hours=1)  # ISO 8601 text is taken too


def test_start_from_trigger_arguments_that_do_not_fit_are_refused_and_mapping_is_warned_about() -> None:
    class Bare(BaseOperator):
        start_from_trigger = True

        def execute(self, context: Context) -> Any:
            return None

    with DAG("d") as dag:
        bare = Bare(task_id="bare")
        bad_method = StartsInTriggerer(task_id="bad_method")
        ending = StartsInTriggerer(task_id="ending")
        StartsInTriggerer.partial(task_id="mapped").expand(retries=[0, 1])
    assert bad_method.start_trigger_args is not None and ending.start_trigger_args is not None
    bad_method.start_trigger_args.next_method = "nope"
    ending.start_trigger_args.trigger_kwargs = {"moment": "x", "end_from_trigger": True}
    with pytest.raises(DagDefinitionError, match="start_from_trigger=True needs start_trigger_args"):
        start_trigger_spec(bare)
    with pytest.raises(DagDefinitionError, match="next_method='nope': the operator has no such method"):
        start_trigger_spec(bad_method)
    with pytest.raises(DagDefinitionError, match="end_from_trigger=True is not supported"):
        start_trigger_spec(ending)
    assert start_trigger_spec(dag.task_dict["mapped"]) is None  # a mapped task starts in a worker (as in Airflow 3)
    assert any("start_from_trigger is not supported on a mapped task" in w.message for w in dag_warnings(dag))
