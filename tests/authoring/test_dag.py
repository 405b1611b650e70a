from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from headrace.authoring.dag import DAG, current_dag
from headrace.authoring.operators import EmptyOperator
from headrace.exceptions import DagCycleError, DagDefinitionError, DuplicateTaskIdError, ScheduleError, TaskNotFound


def test_context_manager_collects_tasks_and_nests() -> None:
    with DAG("outer") as outer:
        a = EmptyOperator(task_id="a")
        with DAG("inner") as inner:
            b = EmptyOperator(task_id="b")
            assert current_dag() is inner
        c = EmptyOperator(task_id="c")
    assert current_dag() is None
    assert outer.task_ids == ["a", "c"] and inner.task_ids == ["b"]
    assert a.dag is outer and b.dag is inner and c.dag is outer


def test_records_file_and_line_of_creation() -> None:
    dag = DAG("here")
    assert dag.fileloc == __file__
    assert dag.lineno == test_records_file_and_line_of_creation.__code__.co_firstlineno + 1


def test_defaults() -> None:
    dag = DAG("d")
    assert dag.schedule is None and dag.catchup is None  # scheduler.catchup_by_default decides (False by default)
    assert dag.max_active_runs is None and dag.max_active_tasks is None
    assert dag.params == {} and dag.tags == [] and dag.default_args == {}


def test_naive_dates_are_utc_and_aware_dates_keep_their_zone() -> None:
    dag = DAG("d", schedule="@daily", start_date=datetime(2024, 1, 1), end_date=datetime(2024, 2, 1))
    assert dag.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    assert dag.end_date is not None and dag.end_date.tzinfo is not None
    ams = ZoneInfo("Europe/Amsterdam")
    local = DAG("l", schedule="0 2 * * *", start_date=datetime(2024, 1, 1, tzinfo=ams))
    assert local.timezone is ams
    assert local.timetable.serialize()["timezone"] == "Europe/Amsterdam"


def test_start_date_from_default_args() -> None:
    dag = DAG("d", schedule="@daily", default_args={"start_date": datetime(2024, 1, 1)})
    assert dag.start_date == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "has space", "slash/y", "ünï", "x" * 251, 7])
def test_bad_dag_ids(bad: object) -> None:
    with pytest.raises(DagDefinitionError, match="dag_id"):
        DAG(bad)  # type: ignore[arg-type]


def test_good_ids_up_to_250_chars() -> None:
    assert DAG("a-b_c.d9").dag_id == "a-b_c.d9"
    assert DAG("x" * 250).dag_id == "x" * 250


def test_bad_task_id_names_the_file() -> None:
    with DAG("d"):
        with pytest.raises(DagDefinitionError, match=r"test_dag\.py:\d+: task_id 'a b'"):
            EmptyOperator(task_id="a b")


def test_bad_schedule_names_file_and_line() -> None:
    with pytest.raises(ScheduleError) as info:
        DAG("d", schedule="61 * * * *")
    assert "invalid cron expression '61 * * * *'" in str(info.value)
    assert str(info.value).startswith(f"{__file__}:")


def test_bad_limits() -> None:
    with pytest.raises(DagDefinitionError, match="max_active_runs"):
        DAG("d", max_active_runs=0)
    with pytest.raises(DagDefinitionError, match="dagrun_timeout"):
        DAG("d", dagrun_timeout="1h")  # type: ignore[arg-type]
    assert DAG("d", dagrun_timeout=60).dagrun_timeout == timedelta(minutes=1)


def test_duplicate_task_id() -> None:
    with DAG("d"):
        EmptyOperator(task_id="a")
        with pytest.raises(DuplicateTaskIdError, match="task_id 'a' has already been added to DAG 'd'"):
            EmptyOperator(task_id="a")


def test_get_task_and_unknown_task() -> None:
    with DAG("d") as dag:
        a = EmptyOperator(task_id="a")
    assert dag.get_task("a") is a and dag.has_task("a")
    with pytest.raises(TaskNotFound, match="DAG 'd' has no task 'nope'") as info:
        dag.get_task("nope")
    assert info.value.fields == {"dag_id": "d", "task_id": "nope"}


def test_roots_leaves_and_topological_order() -> None:
    with DAG("d") as dag:
        a, b, c, d = (EmptyOperator(task_id=t) for t in "abcd")
        EmptyOperator(task_id="e")
        a >> [b, c] >> d
    assert [t.task_id for t in dag.roots] == ["a", "e"]
    assert [t.task_id for t in dag.leaves] == ["d", "e"]
    order = [t.task_id for t in dag.topological_order()]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert dag.downstream_closure("a") == {"b", "c", "d"}
    dag.validate()


def test_cycle_is_named_with_file_and_line() -> None:
    with DAG("cyc") as dag:
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        EmptyOperator(task_id="x") >> a
        a >> b >> c >> a
    with pytest.raises(DagCycleError) as info:
        dag.validate()
    message = str(info.value)
    assert "cycle a → b → c → a" in message
    assert message.startswith(f"{dag.fileloc}:{dag.lineno}: ")
    with pytest.raises(DagCycleError):
        dag.topological_order()


def test_two_node_cycle() -> None:
    with DAG("cyc") as dag:
        a, b = EmptyOperator(task_id="a"), EmptyOperator(task_id="b")
        a >> b
        b >> a
    with pytest.raises(DagCycleError, match="cycle a → b → a"):
        dag.validate()


def test_self_dependency_is_refused() -> None:
    with DAG("d"):
        a = EmptyOperator(task_id="a")
        with pytest.raises(DagDefinitionError, match="itself"):
            a >> a


def test_schedule_without_start_date_fails_validation() -> None:
    with pytest.raises(DagDefinitionError, match="no start_date"):
        DAG("d", schedule="@daily").validate()
    with pytest.raises(DagDefinitionError, match="before start_date"):
        DAG("d", schedule="@daily", start_date=datetime(2024, 2, 1), end_date=datetime(2024, 1, 1)).validate()


def test_large_chain_validates_without_recursion_limits() -> None:
    with DAG("long") as dag:
        prev = EmptyOperator(task_id="t0")
        for i in range(1, 3000):
            cur = EmptyOperator(task_id=f"t{i}")
            prev >> cur
            prev = cur
    dag.validate()
    assert dag.topological_order()[-1].task_id == "t2999"
