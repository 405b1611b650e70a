"""ExternalTaskSensor / ExternalTaskMarker arguments (Airflow's checks, as one-line DagDefinitionErrors), the
dates a poke looks at, the poke's decision from the supervisor's answer, and what is serialized."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from headrace import DAG
from headrace.authoring.triggers import install_trigger_runtime
from headrace.dagfiles.serialization import SerializedDag, serialize_dag
from headrace.exceptions import DagDefinitionError, HeadraceError, SkipTask, TaskDeferred
from headrace.operators import TriggerDagRunOperator
from headrace.sensors import (
    ExternalDagFailedError,
    ExternalDagNotFoundError,
    ExternalTaskFailedError,
    ExternalTaskGroupFailedError,
    ExternalTaskMarker,
    ExternalTaskSensor,
)
from headrace.triggers import TriggerEvent, WorkflowTrigger

WHEN = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"external_task_id": "a", "external_task_ids": ["b"]}, "only one of external_task_id or external_task_ids"),
        ({"external_task_id": "a", "external_task_group_id": "g"}, "only one of external_task_group_id"),
        ({"allowed_states": ["success"], "failed_states": ["success"]}, "duplicate values provided across"),
        ({"external_task_id": "a", "allowed_states": ["queued_x"]}, "['queued_x'] are not task instance states"),
        ({"allowed_states": ["upstream_failed"]}, "are not DAG run states (no task or group is named)"),
        ({"execution_delta": timedelta(1), "execution_date_fn": lambda d: d}, "only one of execution_delta or"),
        ({"execution_delta": 3600}, "execution_delta must be a timedelta"),
        ({"external_dag_id": ""}, "external_dag_id must be a non-empty string"),
    ],
)
def test_sensor_arguments_that_do_not_fit_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DagDefinitionError, match=re.escape(message)):
        ExternalTaskSensor(task_id="s", **{"external_dag_id": "other", **kwargs})


def test_marker_arguments() -> None:
    marker = ExternalTaskMarker(task_id="m", external_dag_id="d", external_task_id="t")
    assert (marker.logical_date, marker.recursion_depth) == ("{{ logical_date.isoformat() }}", 10)
    old = ExternalTaskMarker(task_id="m2", external_dag_id="d", external_task_id="t", execution_date=WHEN)
    assert old.logical_date == old.execution_date == "2026-03-01T00:00:00+00:00"  # Airflow 2's name
    with pytest.raises(DagDefinitionError, match="recursion_depth should be a positive integer, got 0"):
        ExternalTaskMarker(task_id="m3", external_dag_id="d", external_task_id="t", recursion_depth=0)
    with pytest.raises(DagDefinitionError, match="logical_date must be a str or a datetime, got int"):
        ExternalTaskMarker(task_id="m4", external_dag_id="d", external_task_id="t", logical_date=3)  # type: ignore[arg-type]


def test_the_dates_a_poke_looks_at() -> None:
    context: dict[str, Any] = {"logical_date": WHEN, "ds": "2026-03-01"}
    assert ExternalTaskSensor(task_id="a", external_dag_id="o").logical_dates(context) == [WHEN]
    delta = ExternalTaskSensor(task_id="b", external_dag_id="o", execution_delta=timedelta(hours=2))
    assert delta.logical_dates(context) == [WHEN - timedelta(hours=2)]
    seen: dict[str, Any] = {}

    def fn(dt: datetime, ds: str, context: dict[str, Any]) -> list[datetime]:
        seen.update(ds=ds, context=context)
        return [dt, dt - timedelta(days=1)]

    assert ExternalTaskSensor(task_id="c", external_dag_id="o", execution_date_fn=fn).logical_dates(context) == [
        WHEN,
        WHEN - timedelta(days=1),
    ]
    assert seen == {"ds": "2026-03-01", "context": context}
    bad = ExternalTaskSensor(task_id="d", external_dag_id="o", execution_date_fn=lambda dt: "2026-01-01")
    with pytest.raises(TypeError, match="execution_date_fn must return a datetime or a list of them, got str"):
        bad.logical_dates(context)


class _TI:
    """Stands in for the supervisor's answer (the channel is exercised through the scheduler elsewhere)."""

    def __init__(self, runs: list[dict[str, Any]], groups: dict[str, list[str]] | None = None) -> None:
        self.answer = {"runs": runs, "group_task_ids": groups or {}, "missing": None}
        self.asked: list[tuple[Any, ...]] = []

    def external_task_states(self, dag_id: str, dates: list[datetime], **kwargs: Any) -> dict[str, Any]:
        self.asked.append((dag_id, dates, kwargs))
        return self.answer


def _run(state: str, *tis: tuple[str, int, str]) -> dict[str, Any]:
    return {"logical_date": WHEN.isoformat(), "run_id": "r", "state": state, "task_instances": [list(t) for t in tis]}


def test_poke_decides_from_the_other_dags_states() -> None:
    def poke(sensor: ExternalTaskSensor, ti: _TI) -> bool:
        return sensor.poke({"logical_date": WHEN, "ti": ti})

    on_task = ExternalTaskSensor(task_id="t", external_dag_id="o", external_task_id="a", failed_states=["failed"])
    assert poke(on_task, _TI([])) is False  # no run yet
    assert poke(on_task, _TI([_run("running", ("a", -1, "running"))])) is False
    assert poke(on_task, _TI([_run("running", ("a", -1, "success"))])) is True
    # a mapped task: every map index must be in an allowed state
    assert poke(on_task, _TI([_run("running", ("a", 0, "success"), ("a", 1, "running"))])) is False
    assert poke(on_task, _TI([_run("running", ("a", 0, "success"), ("a", 1, "success"))])) is True
    with pytest.raises(ExternalTaskFailedError, match=r"Some of the external tasks \['a'\] in DAG o failed\."):
        poke(on_task, _TI([_run("running", ("a", 0, "success"), ("a", 1, "failed"))]))
    on_task.soft_fail = True
    with pytest.raises(SkipTask, match="Skipping due to soft_fail"):
        poke(on_task, _TI([_run("running", ("a", -1, "failed"))]))

    group = ExternalTaskSensor(
        task_id="g", external_dag_id="o", external_task_group_id="grp", failed_states=["upstream_failed"]
    )
    groups = {"r": ["grp.a", "grp.b"]}
    assert poke(group, _TI([_run("running", ("grp.a", -1, "success"))], groups)) is False  # grp.b has no TI
    assert poke(group, _TI([_run("success", ("grp.a", -1, "success"), ("grp.b", -1, "success"))], groups)) is True
    assert poke(group, _TI([_run("success", ("grp.a", -1, "success"))], {})) is False  # no such group in the run
    with pytest.raises(ExternalTaskGroupFailedError, match="The external task_group 'grp' in DAG 'o' failed."):
        poke(group, _TI([_run("failed", ("grp.b", -1, "upstream_failed"))], groups))

    whole = ExternalTaskSensor(task_id="w", external_dag_id="o", failed_states=["failed"], skipped_states=["queued"])
    assert poke(whole, _TI([_run("success")])) is True
    with pytest.raises(SkipTask, match="The external DAG o reached a state in our states-to-skip-on list"):
        poke(whole, _TI([_run("queued")]))
    with pytest.raises(ExternalDagFailedError, match="The external DAG o failed."):
        poke(whole, _TI([_run("failed")]))

    two_dates = ExternalTaskSensor(
        task_id="d", external_dag_id="o", execution_date_fn=lambda dt: [dt, dt - timedelta(days=1)]
    )
    assert poke(two_dates, _TI([_run("success")])) is False  # one run found for two dates

    missing = ExternalTaskSensor(task_id="m", external_dag_id="o", check_existence=True)
    ti = _TI([])
    ti.answer["missing"] = ["dag", "o"]
    with pytest.raises(ExternalDagNotFoundError, match="The external DAG o does not exist."):
        poke(missing, ti)
    assert ti.asked[0][2]["check_existence"] is True


def test_deferrable_sensor_pokes_once_then_defers_and_decides_from_the_event_as_a_poke() -> None:
    sensor = ExternalTaskSensor(
        task_id="t",
        external_dag_id="o",
        external_task_ids=["a", "b"],
        failed_states=["failed"],
        skipped_states=["skipped"],
        execution_delta=timedelta(hours=1),
        poll_interval=0.5,
        timeout=60,
        deferrable=True,
    )
    context: dict[str, Any] = {"logical_date": WHEN, "ti": _TI([_run("running", ("a", -1, "running"))])}
    with pytest.raises(TaskDeferred) as raised:
        sensor.execute(context)
    trigger = raised.value.trigger
    assert isinstance(trigger, WorkflowTrigger) and raised.value.method_name == "execute_complete"
    assert raised.value.timeout == timedelta(seconds=60)
    assert trigger.serialize() == (
        "headrace.triggers.WorkflowTrigger",
        {
            "external_dag_id": "o",
            "logical_dates": [WHEN - timedelta(hours=1)],
            "external_task_ids": ["a", "b"],
            "external_task_group_id": None,
            "failed_states": ["failed"],
            "skipped_states": ["skipped"],
            "allowed_states": ["success"],
            "poke_interval": 0.5,
            "soft_fail": False,
        },
    )
    done = {"logical_date": WHEN, "ti": _TI([_run("running", ("a", -1, "success"), ("b", -1, "success"))])}
    assert sensor.execute(done) is None  # the first poke decides: no deferral
    assert sensor.execute_complete(context, {"status": "success"}) is None
    with pytest.raises(SkipTask, match="states-to-skip-on"):
        sensor.execute_complete(context, {"status": "skipped"})
    with pytest.raises(ExternalTaskFailedError, match="failed"):
        sensor.execute_complete(context, {"status": "failed"})
    sensor.soft_fail = True
    with pytest.raises(SkipTask, match="soft_fail"):
        sensor.execute_complete(context, {"status": "failed"})
    with pytest.raises(HeadraceError, match="unexpected event"):
        sensor.execute_complete(context, "what")


def test_workflow_trigger_reads_through_the_triggerers_reader_and_fires_on_a_decision() -> None:
    answers = [
        {"runs": [_run("running", ("a", -1, "running"))]},
        {"runs": [_run("running", ("a", -1, "success"))]},
    ]
    asked: list[tuple[Any, ...]] = []

    async def reader(dag_id: str, dates: Any, task_ids: Any, group_id: Any) -> dict[str, Any]:
        asked.append((dag_id, list(dates), task_ids, group_id))
        return answers[min(len(asked), len(answers)) - 1]

    trigger = WorkflowTrigger(external_dag_id="o", logical_dates=[WHEN], external_task_ids=["a"], poke_interval=0.01)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    install_trigger_runtime(None, reader)
    try:
        assert asyncio.run(first_event()) == TriggerEvent({"status": "success"})
    finally:
        install_trigger_runtime(None, None)
    assert asked == [("o", [WHEN], ["a"], None)] * 2
    with pytest.raises(DagDefinitionError, match="run_ids is not supported"):
        WorkflowTrigger(external_dag_id="o", run_ids=["r"])
    with pytest.raises(DagDefinitionError, match="at least one date"):
        WorkflowTrigger(external_dag_id="o")


def test_poke_without_a_supervisor_says_so() -> None:
    sensor = ExternalTaskSensor(task_id="t", external_dag_id="o")
    with pytest.raises(Exception, match="only when run by a supervisor"):
        sensor.poke({"logical_date": WHEN, "ti": object()})


def test_the_other_dag_is_serialized_for_links_and_clearing() -> None:
    with DAG("refs") as dag:
        ExternalTaskSensor(task_id="wait", external_dag_id="up", external_task_id="t")
        ExternalTaskMarker(task_id="mark", external_dag_id="down", external_task_id="w", recursion_depth=3)
        TriggerDagRunOperator(task_id="kick", trigger_dag_id="next")
    tasks = SerializedDag.from_dict(serialize_dag(dag)).tasks
    assert tasks["wait"].external == {"dag_id": "up", "kind": "sensor"}
    assert tasks["mark"].external == {
        "dag_id": "down",
        "kind": "marker",
        "logical_date": "{{ logical_date.isoformat() }}",
        "recursion_depth": 3,
        "task_id": "w",
    }
    assert tasks["kick"].external == {"dag_id": "next", "kind": "trigger"}
