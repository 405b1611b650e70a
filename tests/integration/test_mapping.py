"""Dynamic task mapping through the real DAG processor, scheduler loop and local executor (SQLite and PostgreSQL).

Each DAG checks its own inputs inside its tasks (a wrong value fails the try); the tests then read the task
instances by map index, their tries and XComs from the database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, TaskMap, TaskTry, XCom
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

DAGS = """
from datetime import datetime

from headrace import DAG, task, task_group
from headrace.operators import BashOperator, EmptyOperator, PythonOperator

START = datetime(2026, 1, 1)


@task
def numbers():
    return [1, 2, 3]


@task
def add(x, y):
    return x + y


@task
def collect(values, expected):
    assert list(values) == expected, list(values)
    return list(values)


with DAG("map_xcom", schedule=None, start_date=START):
    added = add.partial(y=10).expand(x=numbers())
    collect(added, [11, 12, 13])


with DAG("map_literal", schedule=None, start_date=START):
    echo = BashOperator.partial(task_id="echo", retries=0).expand(bash_command=["echo a", "echo b"])
    double = PythonOperator.partial(task_id="double", python_callable=lambda v: v * 2).expand(op_args=[[1], [2], [3]])
    collect.override(task_id="doubled")(double.output, [2, 4, 6])


@task
def nothing():
    return []


with DAG("map_zero", schedule=None, start_date=START):
    mapped = add.partial(y=1).expand(x=nothing())
    after = EmptyOperator(task_id="after")
    always = EmptyOperator(task_id="always", trigger_rule="all_done")
    mapped >> [after, always]


@task
def pairs():
    return [{"x": 1, "y": 2}, {"x": 3, "y": 4}]


@task
def show(pair, label):
    return f"{label}:{pair}"


with DAG("map_kinds", schedule=None, start_date=START):
    from_kwargs = add.expand_kwargs(pairs())
    collect.override(task_id="kwargs_sums")(from_kwargs, [3, 7])
    literal_kwargs = add.override(task_id="literal_kwargs").expand_kwargs([{"x": 5, "y": 5}])
    collect.override(task_id="literal_sums")(literal_kwargs, [10])
    product = show.expand(pair=[1, 2], label=["a", "b", "c"])
    collect.override(task_id="product")(product, ["a:1", "b:1", "c:1", "a:2", "b:2", "c:2"])
    n = numbers()
    zipped = show.override(task_id="zipped").partial(label="z").expand(pair=n.zip(n.map(lambda v: v * 10)))
    collect.override(task_id="zips")(zipped, ["z:(1, 10)", "z:(2, 20)", "z:(3, 30)"])
    over_dict = show.override(task_id="over_dict").partial(label="d").expand(pair={"k": 1, "j": 2})
    collect.override(task_id="dict_items")(over_dict, ["d:('k', 1)", "d:('j', 2)"])


@task_group
def pipeline(value):
    @task
    def inc(v):
        return v + 1

    @task
    def times_ten(v, map_index, expanded_ti_count, ti):
        assert ti.map_index == map_index and expanded_ti_count == 3, (ti.map_index, map_index, expanded_ti_count)
        return v * 10

    return times_ten(inc(value))


with DAG("map_group", schedule=None, start_date=START):
    collect.override(task_id="group_out")(pipeline.expand(value=numbers()), [20, 30, 40])


@task(retries=1, retry_delay=0)
def flaky(x, try_number, ti):
    if x == 2 and try_number == 1:
        raise RuntimeError("index 1 fails its first try")
    return x


with DAG("map_retry", schedule=None, start_date=START):
    collect.override(task_id="retried")(flaky.expand(x=[1, 2, 3]), [1, 2, 3])


@task
def five():
    return [1, 2, 3, 4, 5]


@task
def raw_texts():
    return ["{{ ds }}", "{{ oops"]


@task
def keep(text):
    assert text in ("{{ ds }}", "{{ oops"), text  # pulled from XCom: data, never rendered as a template
    return text


@task.run_if(lambda context: context["map_index"] != 1, skip_message="not index 1")
@task
def conditional(x):
    return x


with DAG("map_data", schedule=None, start_date=START):
    keep.expand(text=raw_texts())
    BashOperator.partial(task_id="literal_template").expand(bash_command=["test {{ ds }} = {{ logical_date | ds }}"])
    conditional.expand(x=[1, 2, 3])


@task_group
def routed(value):
    @task.branch
    def choose(v):
        return "routed.big" if v > 1 else "routed.small"

    @task
    def big(v):
        return "big"

    @task
    def small(v):
        return "small"

    choose(value) >> [big(value), small(value)]


with DAG("map_branch", schedule=None, start_date=START):
    routed.expand(value=numbers())


with DAG("map_too_long", schedule=None, start_date=START):
    add.partial(y=0).expand(x=five())
    add.override(task_id="literal_too_long").partial(y=0).expand(x=[1, 2, 3, 4])
"""


def run_all(settings: Settings, db: Database, **core: Any) -> dict[str, dict[tuple[str, int], str]]:
    """Parse the DAG file, trigger every DAG, run the scheduler until all runs end; return
    ``{dag_id: {(task_id, map_index): state}}`` with the run's state under ``("<run>", -1)``."""
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], **core}})
    write_dag(fast, "mapping_dags.py", DAGS)
    processor = DagProcessor(fast, db)
    assert processor.refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        dag_ids = [
            "map_xcom",
            "map_literal",
            "map_zero",
            "map_kinds",
            "map_group",
            "map_retry",
            "map_too_long",
            "map_data",
            "map_branch",
        ]
        for dag_id in dag_ids:
            trigger_dag(session, dag_id, now=datetime.now(UTC))

    def ended() -> bool:
        with db.read_session() as session:
            states = list(session.scalars(select(DagRun.state)))
        return len(states) == 9 and all(s in ("success", "failed") for s in states)

    assert run_scheduler_until(fast, db, ended, processor=processor, timeout=240)
    processor.close()
    out: dict[str, dict[tuple[str, int], str]] = {}
    with db.read_session() as session:
        for ti in session.scalars(select(TaskInstance)):
            out.setdefault(ti.dag_id, {})[(ti.task_id, ti.map_index)] = ti.state
        for run in session.scalars(select(DagRun)):
            out[run.dag_id][("<run>", -1)] = run.state
    return out


def xcoms(db: Database, dag_id: str, task_id: str) -> dict[int, Any]:
    with db.read_session() as session:
        rows = session.execute(
            select(XCom.map_index, XCom.value).where(
                XCom.dag_id == dag_id, XCom.task_id == task_id, XCom.key == "return_value"
            )
        )
        return {index: json.loads(value) for index, value in rows}


def test_mapped_tasks_expand_run_per_index_and_feed_downstream(settings: Settings, db: Database) -> None:
    states = run_all(settings, db, max_map_length=3)

    # over an upstream's value: one task instance per item, each its own value; downstream gets the list
    assert states["map_xcom"] == {
        ("<run>", -1): "success",
        ("numbers", -1): "success",
        ("add", 0): "success",
        ("add", 1): "success",
        ("add", 2): "success",
        ("collect", -1): "success",
    }
    assert xcoms(db, "map_xcom", "add") == {0: 11, 1: 12, 2: 13}
    with db.read_session() as session:
        assert session.execute(select(TaskMap.task_id, TaskMap.map_index, TaskMap.length)).all() == [
            ("numbers", -1, 3)
        ] or {r.task_id for r in session.scalars(select(TaskMap))} >= {"numbers"}

    # over literals: classic operators too, expanded when the run was created
    assert states["map_literal"] == {
        ("<run>", -1): "success",
        ("echo", 0): "success",
        ("echo", 1): "success",
        ("double", 0): "success",
        ("double", 1): "success",
        ("double", 2): "success",
        ("doubled", -1): "success",
    }

    # nothing to map over: the mapped task is skipped, all_success downstream skipped, all_done runs
    assert states["map_zero"] == {
        ("<run>", -1): "success",
        ("nothing", -1): "success",
        ("add", -1): "skipped",
        ("after", -1): "skipped",
        ("always", -1): "success",
    }

    # expand_kwargs, the cross product (last argument fastest), zip and map, a dict's items
    assert states["map_kinds"][("<run>", -1)] == "success", states["map_kinds"]
    assert sorted(i for (t, i) in states["map_kinds"] if t == "show") == [0, 1, 2, 3, 4, 5]
    assert set(states["map_kinds"].values()) == {"success"}

    # a mapped task group: each task per index, same-index values inside the group, the list outside
    assert states["map_group"][("<run>", -1)] == "success", states["map_group"]
    assert xcoms(db, "map_group", "pipeline.times_ten") == {0: 20, 1: 30, 2: 40}
    assert xcoms(db, "map_group", "pipeline.inc") == {0: 2, 1: 3, 2: 4}

    # values pulled from XCom are not templates (a literal still is); run_if decides per index
    assert states["map_data"] == {
        ("<run>", -1): "success",
        ("raw_texts", -1): "success",
        ("keep", 0): "success",
        ("keep", 1): "success",
        ("literal_template", 0): "success",
        ("conditional", 0): "success",
        ("conditional", 1): "skipped",
        ("conditional", 2): "success",
    }, states["map_data"]

    # a branch inside a mapped task group skips only its own index's other path (Airflow's skip_all_except)
    assert states["map_branch"] == {
        ("<run>", -1): "success",
        ("numbers", -1): "success",
        **{("routed.choose", i): "success" for i in range(3)},
        ("routed.small", 0): "success",
        ("routed.big", 0): "skipped",
        **{("routed.big", i): "success" for i in (1, 2)},
        **{("routed.small", i): "skipped" for i in (1, 2)},
    }, states["map_branch"]

    # per-index tries: only index 1 was retried
    assert states["map_retry"][("<run>", -1)] == "success", states["map_retry"]
    with db.read_session() as session:
        tries = session.execute(
            select(TaskTry.map_index, TaskTry.try_number, TaskTry.state)
            .where(TaskTry.dag_id == "map_retry", TaskTry.task_id == "flaky")
            .order_by(TaskTry.map_index, TaskTry.try_number)
        ).all()
        logs = session.scalars(
            select(TaskTry.log_path).where(TaskTry.dag_id == "map_retry", TaskTry.task_id == "flaky")
        ).all()
    assert [tuple(t) for t in tries] == [
        (0, 1, "success"),
        (1, 1, "up_for_retry"),
        (1, 2, "success"),
        (2, 1, "success"),
    ]
    assert all(f"map_index={i}" in path for i, path in zip([0, 1, 1, 2], sorted(logs), strict=True))

    # core.max_map_length = 3: a longer pushed value fails its pusher (Airflow's rule); literals are not held to it
    assert states["map_too_long"] == {
        ("<run>", -1): "failed",
        ("five", -1): "failed",
        ("add", -1): "upstream_failed",
        **{("literal_too_long", i): "success" for i in range(4)},
    }
    with db.read_session() as session:
        errors = session.scalars(select(TaskTry.error).where(TaskTry.task_id == "five")).all()
    assert errors == ["XComError: task 'five' pushed an unmappable return value length: 5 > 3 (core.max_map_length)"]
