"""A cleared mapped task expands again to its upstream's new length (Airflow's ``removed`` state), through the
real DAG processor, scheduler loop and local executor on SQLite and PostgreSQL.

The upstream task reads its length from a file beside the DAG; the test runs the DAG with 3, clears the run,
runs it with 2 (index 2 becomes ``removed``), clears it again and runs it with 4 (index 2 runs again, index 3
is created). Downstream tasks check the list they receive inside their tasks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, XCom
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.user_actions import clear_task_instances
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

DAG = """
from datetime import datetime
from pathlib import Path

from headrace import DAG, task, task_group
from headrace.operators import EmptyOperator


@task
def numbers():
    return list(range(int((Path(__file__).parent / "remap_length.txt").read_text())))


@task
def double(x):
    return x * 2


@task
def collect(values):
    return list(values)


@task_group
def pipeline(value):
    @task
    def inc(v):
        return v + 1

    @task
    def times_ten(v):
        return v * 10

    return times_ten(inc(value))


with DAG("remap", schedule=None, start_date=datetime(2026, 1, 1)):
    n = numbers()
    collect.override(task_id="doubled")(double.expand(x=n))
    collect.override(task_id="grouped")(pipeline.expand(value=n))
    double_done = EmptyOperator(task_id="after_all_done", trigger_rule="all_done")
    n >> double_done
"""


def _run(settings: Settings, db: Database, processor: DagProcessor, length: int) -> None:
    (settings.dags_folder / "remap_length.txt").write_text(str(length))

    def ended() -> bool:
        with db.read_session() as session:
            return session.scalar(select(DagRun.state)) in ("success", "failed")

    assert run_scheduler_until(settings, db, ended, processor=processor, timeout=120)


def _states(db: Database, task_id: str) -> dict[int, str]:
    with db.read_session() as session:
        rows = session.execute(
            select(TaskInstance.map_index, TaskInstance.state).where(TaskInstance.task_id == task_id)
        ).all()
    return dict(sorted((index, state) for index, state in rows))


def _value(db: Database, task_id: str) -> Any:
    with db.read_session() as session:
        value = session.scalar(select(XCom.value).where(XCom.task_id == task_id, XCom.key == "return_value"))
    return None if value is None else json.loads(value)


def _clear(db: Database) -> None:
    with db.session() as session:
        run = session.scalars(select(DagRun)).one()
        result = clear_task_instances(session, run, now=datetime.now(UTC))
        assert result.cleared and result.run_requeued


def _run_state(db: Database) -> str | None:
    with db.read_session() as session:
        return session.scalar(select(DagRun.state))


def test_clear_reexpands_mapped_tasks_to_the_new_length(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "remap.py", DAG)
    processor = DagProcessor(fast, db)
    assert processor.refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        trigger_dag(session, "remap", now=datetime.now(UTC))
    try:
        _run(fast, db, processor, 3)
        assert _run_state(db) == "success"
        assert _states(db, "double") == {0: "success", 1: "success", 2: "success"}
        assert _value(db, "doubled") == [0, 2, 4]
        assert _value(db, "grouped") == [10, 20, 30]

        # 3 → 2: index 2 of each mapped task is removed, its old value gone; the run succeeds
        _clear(db)
        _run(fast, db, processor, 2)
        assert _run_state(db) == "success"
        for task_id in ("double", "pipeline.inc", "pipeline.times_ten"):
            assert _states(db, task_id) == {0: "success", 1: "success", 2: "removed"}, task_id
        assert _value(db, "doubled") == [0, 2]
        assert _value(db, "grouped") == [10, 20]
        with db.read_session() as session:
            kept = session.scalars(select(XCom.map_index).where(XCom.task_id == "double")).all()
        assert sorted(kept) == [0, 1]

        # 2 → 4: the removed index runs again and index 3 is created
        _clear(db)
        _run(fast, db, processor, 4)
        assert _run_state(db) == "success"
        for task_id in ("double", "pipeline.inc", "pipeline.times_ten"):
            assert _states(db, task_id) == dict.fromkeys(range(4), "success"), task_id
        assert _value(db, "doubled") == [0, 2, 4, 6]
        assert _value(db, "grouped") == [10, 20, 30, 40]
        assert _states(db, "after_all_done") == {-1: "success"}

        # 4 → 0: index 0 is skipped (its downstream follows its trigger rule), the others removed
        _clear(db)
        _run(fast, db, processor, 0)
        assert _states(db, "double") == {0: "skipped", 1: "removed", 2: "removed", 3: "removed"}
        assert _states(db, "doubled") == {-1: "skipped"}
        assert _run_state(db) == "success"
    finally:
        processor.close()
