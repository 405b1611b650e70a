"""weight_rule (Airflow's): task instances get priority_weight summed downstream (the default), upstream, or
their own (absolute); the scheduler queues by it. On SQLite and PostgreSQL, through the real scheduler."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from headrace import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
from headrace.exceptions import DagDefinitionError
from headrace.operators import EmptyOperator
from headrace.scheduler.runs import trigger_dag
from tests.integration.helpers import FAST, parse_and_trigger, run_scheduler_until_done, write_dag

from .conftest import NOW, store_dags, tis


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("downstream", {"a": 6, "b": 5, "c": 3}),
        ("upstream", {"a": 1, "b": 3, "c": 6}),
        ("absolute", {"a": 1, "b": 2, "c": 3}),
    ],
)
def test_priority_weight_of_task_instances_follows_the_weight_rule(
    settings: Settings, db: Database, rule: str, expected: dict[str, int]
) -> None:
    with DAG("weights", default_args={"weight_rule": rule}) as dag:
        EmptyOperator(task_id="a", priority_weight=1) >> EmptyOperator(task_id="b", priority_weight=2)
        dag.get_task("b") >> EmptyOperator(task_id="c", priority_weight=3)
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, "weights", now=NOW)
    assert {t: ti.priority_weight for t, ti in tis(db).items()} == expected


def test_a_custom_weight_rule_is_refused_by_name() -> None:
    with DAG("bad"), pytest.raises(DagDefinitionError, match="'x': weight_rule must be one of"):
        EmptyOperator(task_id="x", weight_rule="my_strategy")


ORDER = """
from datetime import datetime
from headrace import DAG, chain
from headrace.operators import EmptyOperator

with DAG("weight_order", schedule=None, start_date=datetime(2026, 1, 1)):
    # a's chain adds up to 4 under "downstream"; b weighs 3 on its own
    chain(*(EmptyOperator(task_id=f"a{i}", weight_rule="{rule}") for i in range(4)))
    EmptyOperator(task_id="b", priority_weight=3)
"""


@pytest.mark.parametrize(("rule", "first"), [("downstream", "a0"), ("absolute", "b")])
def test_the_scheduler_queues_the_heavier_root_first(settings: Settings, db: Database, rule: str, first: str) -> None:
    settings = settings.with_overrides({**FAST, "core": {**FAST["core"], "parallelism": 1}})
    write_dag(settings, "order.py", ORDER.replace("{rule}", rule))
    parse_and_trigger(settings, db, "weight_order")
    run_scheduler_until_done(settings, db)
    with db.session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.queued_at, TaskInstance.state)).all()
    assert {r.state for r in rows} == {"success"}
    roots = sorted((r for r in rows if r.task_id in ("a0", "b")), key=lambda r: r.queued_at)
    assert roots[0].task_id == first


def test_a_priority_weight_strategy_object_is_refused_naming_it() -> None:
    class DecreasingPriorityStrategy:  # Airflow 2.9+'s PriorityWeightStrategy shape: get_weight(ti)
        def get_weight(self, ti: object) -> int:
            return 1

    with (
        DAG("strategy"),
        pytest.raises(DagDefinitionError, match=r"'x': weight_rule=DecreasingPriorityStrategy\(…\): "),
    ):
        EmptyOperator(task_id="x", weight_rule=DecreasingPriorityStrategy())  # type: ignore[arg-type]


DEFAULT_RULE = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("default_rule", schedule=None, start_date=datetime(2026, 1, 1)):
    a = EmptyOperator(task_id="a", priority_weight=1)  # no weight_rule: core.default_task_weight_rule
    b = EmptyOperator(task_id="b", priority_weight=2)
    c = EmptyOperator(task_id="c", priority_weight=3, weight_rule="absolute")  # given: kept
    a >> b >> c
"""


@pytest.mark.parametrize(
    ("default", "expected"),
    [(None, {"a": 6, "b": 5, "c": 3}), ("upstream", {"a": 1, "b": 3, "c": 3}), ("absolute", {"a": 1, "b": 2, "c": 3})],
)
def test_core_default_task_weight_rule_applies_to_tasks_without_one(
    settings: Settings, db: Database, default: str | None, expected: dict[str, int]
) -> None:
    """Airflow's key: the weight_rule of tasks that give none, as the DAG processor parses the file; the scheduler
    gives the run's task instances the priority it implies."""
    from headrace.authoring.weight_rule import set_default_weight_rule

    core = {"default_task_weight_rule": default} if default else {}
    settings = settings.with_overrides({**FAST, "core": {**FAST["core"], **core}})
    write_dag(settings, "default_rule.py", DEFAULT_RULE)
    try:
        run_id = parse_and_trigger(settings, db, "default_rule")
    finally:
        set_default_weight_rule("downstream")  # this process parsed with the setting: back to Airflow's default
    assert {t: ti.priority_weight for t, ti in tis(db, run_id).items()} == expected
    with pytest.raises(ValueError, match="core.default_task_weight_rule must be one of downstream, upstream, absolute"):
        set_default_weight_rule("sideways")
