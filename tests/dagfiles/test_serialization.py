from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from headrace.authoring.dag import DAG, DagContext
from headrace.authoring.decorators import task
from headrace.authoring.operators import BashOperator, EmptyOperator
from headrace.authoring.timetables import CronTriggerTimetable, DeltaTriggerTimetable
from headrace.authoring.trigger_rules import TriggerRule
from headrace.authoring.xcom import XComArg
from headrace.dagfiles import collect_dags
from headrace.dagfiles.serialization import SerializedDag, dag_hash, serialize_dag
from headrace.exceptions import DagDefinitionError, TaskNotFound


@pytest.fixture(autouse=True)
def _clean_registry() -> object:
    yield
    DagContext._stack.clear()
    DagContext._autoregistered.clear()


def build() -> DAG:
    def cb(context: object) -> None: ...

    with DAG(
        "etl",
        schedule="0 3 * * *",
        start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam")),
        catchup=True,
        max_active_runs=2,
        tags=["b", "a"],
        description="nightly",
        params={"n": 1},
        on_failure_callback=cb,
        dagrun_timeout=3600,
    ) as dag:
        extract = BashOperator(
            task_id="extract",
            bash_command="echo",
            retries=3,
            retry_delay=30,
            retry_exponential_backoff=True,
            max_retry_delay=600,
            execution_timeout=60,
            memory_limit="512MiB",
            pool="etl",
            pool_slots=2,
            priority_weight=5,
            queue="io",
            on_retry_callback=cb,
        )

        @task
        def load(x: object) -> None: ...

        done = EmptyOperator(task_id="done", trigger_rule="all_done")
        extract >> done
        load(XComArg(extract)) >> done
    return dag


def test_serialize_is_json_sorted_and_stable() -> None:
    first, second = serialize_dag(build()), serialize_dag(build())
    assert first == second
    assert dag_hash(first) == dag_hash(second)
    assert list(first) == sorted(first)
    assert json.loads(json.dumps(first)) == first
    assert first["tasks"]["done"]["upstream_task_ids"] == ["extract", "load"]


def test_hash_changes_with_the_dag() -> None:
    a = serialize_dag(build())
    changed = build()
    changed.get_task("done").retries = 1
    assert dag_hash(serialize_dag(changed)) != dag_hash(a)
    assert len(dag_hash(a)) == 64


def test_round_trip_to_serialized_dag() -> None:
    data = serialize_dag(build())
    sd = SerializedDag.from_dict(json.loads(json.dumps(data)))
    assert sd.dag_id == "etl" and sd.fileloc == __file__ and sd.lineno > 0
    assert sd.schedule == "0 3 * * *"
    assert isinstance(sd.timetable, CronTriggerTimetable) and sd.timezone == "Europe/Amsterdam"
    assert sd.start_date == datetime(2023, 12, 31, 23, tzinfo=UTC)
    assert sd.end_date is None and sd.catchup is True
    assert (sd.max_active_runs, sd.max_active_tasks) == (2, None)
    assert sd.tags == ("a", "b") and sd.description == "nightly" and sd.params == {"n": 1}
    assert sd.has_on_failure_callback and not sd.has_on_success_callback
    assert sd.dagrun_timeout == 3600
    assert sd.roots == ["extract"] and sd.leaves == ["done"]
    t = sd.get_task("extract")
    assert t.operator == "BashOperator"
    assert t.downstream_task_ids == frozenset({"done", "load"})
    assert (t.retries, t.retry_delay, t.retry_exponential_backoff, t.max_retry_delay) == (3, 30.0, True, 600.0)
    assert (t.execution_timeout, t.memory_limit) == (60.0, 512 * 2**20)
    assert (t.pool, t.pool_slots, t.priority_weight, t.queue) == ("etl", 2, 5, "io")
    assert t.has_on_retry_callback and not t.has_on_failure_callback
    assert [t.retry_delay_for(n) for n in (1, 2, 10)] == [30, 60, 600]
    assert sd.get_task("done").trigger_rule is TriggerRule.ALL_DONE
    assert sd.get_task("load").operator == "@task"
    assert sd.hash == dag_hash(data)
    with pytest.raises(TaskNotFound, match="DAG 'etl' has no task 'nope'"):
        sd.get_task("nope")


def test_serialized_timetable_schedules_like_the_dag() -> None:
    dag = build()
    sd = SerializedDag.from_dict(serialize_dag(dag))
    now = datetime(2024, 7, 1, tzinfo=UTC)
    kw = dict(start_date=sd.start_date, end_date=None, catchup=False, now=now)
    assert sd.timetable.next_run(None, **kw) == dag.timetable.next_run(None, **kw)  # type: ignore[arg-type]


def test_unscheduled_and_timedelta_dags() -> None:
    assert serialize_dag(DAG("none"))["schedule"] is None
    sd = SerializedDag.from_dict(
        serialize_dag(DAG("delta", schedule=timedelta(hours=2), start_date=datetime(2024, 1, 1)))
    )
    assert sd.schedule == "every 2:00:00" and isinstance(sd.timetable, DeltaTriggerTimetable)
    assert sd.timetable.serialize() == {"delta": 7200.0, "interval": 0.0}


def test_params_must_be_json() -> None:
    """A default that is no JSON value is refused when the DAG is created (at parse time), with its line."""
    with pytest.raises(DagDefinitionError, match="DAG 'p': Param default .* is not JSON-serializable") as info:
        DAG("p", params={"when": object()})
    assert info.value.fileloc == __file__ and info.value.lineno


def test_other_versions_are_refused() -> None:
    data = serialize_dag(DAG("v"))
    data["version"] = 99
    with pytest.raises(DagDefinitionError, match="version 99"):
        SerializedDag.from_dict(data)


DAG_FILE = """
from datetime import datetime
from headrace import DAG, dag, task
from headrace.operators import EmptyOperator

assigned = DAG("assigned")
EmptyOperator(task_id="a", dag=assigned)

with DAG("context_only"):
    EmptyOperator(task_id="b")

@dag(schedule="@daily", start_date=datetime(2024, 1, 1))
def decorated():
    EmptyOperator(task_id="c")

decorated()

alias = assigned
not_a_dag = 3
"""


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def test_collect_dags_finds_globals_context_managers_and_dag_calls(tmp_path: Path) -> None:
    path = tmp_path / "my_dags.py"
    path.write_text(DAG_FILE)
    module = _import(path, "headrace_dag_test_collect")
    dags = collect_dags(module)
    assert [d.dag_id for d in dags] == ["assigned", "context_only", "decorated"]
    assert all(d.fileloc == str(path) for d in dags)
    assert dags[2].lineno == DAG_FILE.splitlines().index("decorated()") + 1
    # registrations are consumed: a second import of the file starts afresh
    assert DagContext.take_registered("headrace_dag_test_collect") == []
