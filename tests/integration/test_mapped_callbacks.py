"""Task callbacks of a mapped task get the operator of their map index as ``context["task"]``, through the real
DAG processor, scheduler loop and local executor on SQLite and PostgreSQL: in the task process (its resolved
arguments), in the supervisor's callback child after an ``execution_timeout`` (literal arguments resolved, an
argument pulled from XCom ``None``: XCom is not available there)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

DAG = """
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from headrace import DAG, task
from headrace.operators import BashOperator

OUT = Path(__file__).parent / "callbacks.jsonl"


def record(context):
    t = context["task"]
    row = {
        "task_id": t.task_id,
        "type": type(t).__name__,
        "map_index": context["map_index"],
        "bash_command": getattr(t, "bash_command", None),
        "op_kwargs": getattr(t, "op_kwargs", None),
        "exception": type(context.get("exception")).__name__,
    }
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\\n")


@task
def numbers():
    return [5, 6]


@task(execution_timeout=timedelta(seconds=1), on_failure_callback=record)
def slow(x):
    time.sleep(30)


@task(on_failure_callback=record, on_success_callback=record)
def quick(x):
    if x == "b":
        raise ValueError(x)


with DAG("mcb", schedule=None, start_date=datetime(2026, 1, 1)):
    BashOperator.partial(
        task_id="bash", execution_timeout=timedelta(seconds=1), on_failure_callback=record
    ).expand(bash_command=["sleep 30", "sleep 31"])
    slow.expand(x=numbers())
    quick.expand(x=["a", "b"])
"""


def test_callbacks_get_the_operator_of_their_map_index(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "mcb.py", DAG)
    processor = DagProcessor(fast, db)
    assert processor.refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        trigger_dag(session, "mcb", now=datetime.now(UTC))
    out = fast.dags_folder / "callbacks.jsonl"

    def done() -> bool:
        with db.read_session() as session:
            ended = session.scalar(select(DagRun.state)) in ("success", "failed")
        return ended and out.exists() and len(out.read_text().splitlines()) == 6

    try:
        assert run_scheduler_until(fast, db, done, processor=processor, timeout=120)
    finally:
        processor.close()
    rows: list[dict[str, Any]] = sorted(
        (json.loads(line) for line in out.read_text().splitlines()), key=lambda r: (r["task_id"], r["map_index"])
    )
    bash = [(r["type"], r["map_index"], r["bash_command"], r["exception"]) for r in rows if r["task_id"] == "bash"]
    assert bash == [
        ("BashOperator", 0, "sleep 30", "RuntimeError"),  # run by the supervisor's child after the timeout
        ("BashOperator", 1, "sleep 31", "RuntimeError"),
    ]
    slow = [(r["type"], r["map_index"], r["op_kwargs"]) for r in rows if r["task_id"] == "slow"]
    assert [(i, kw) for _, i, kw in slow] == [(0, {"x": None}), (1, {"x": None})]  # pulled: not available there
    assert all(t != "MappedOperator" for t, _, _ in slow)
    quick = [(r["type"], r["map_index"], r["op_kwargs"], r["exception"]) for r in rows if r["task_id"] == "quick"]
    assert [(i, kw, e) for _, i, kw, e in quick] == [(0, {"x": "a"}, "NoneType"), (1, {"x": "b"}, "ValueError")]
    assert all(t != "MappedOperator" for t, _, _, _ in quick)
