"""Mapped task instances read one item each (``GetMappedItems``), through the real DAG processor, scheduler
and local executor, on SQLite and PostgreSQL.

Each mapped task checks in its own process the item it got for its map index (a wrong one fails the try):
items of lists, tuples and dicts holding types JSON lacks, a mapped task's values (one index pushing
nothing), zips (the fill value past the shorter's end), a cross product of two pushed values and a literal,
``expand_kwargs`` over a pushed list and its ``.map()``. A custom XCom backend that logs what it reads shows
each mapped task instance reading only its own row of a mapped upstream, and the whole value of an unmapped
one (which it stores elsewhere).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

from .helpers import FAST, write_dag

DAGS = """
from datetime import datetime, timezone
from decimal import Decimal

from headrace import DAG, task

START = datetime(2026, 1, 1)
WHEN = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


@task
def values():
    return [WHEN, (1, "a"), {"k": Decimal("0.10")}]


@task
def a_dict():
    return {"when": WHEN, "n": 2}


@task
def short():
    return ["s0"]


@task
def check(got, map_index):
    expected = {
        0: WHEN,
        1: (1, "a"),
        2: {"k": Decimal("0.10")},
    }[map_index]
    assert got == expected and type(got) is type(expected), (map_index, got)
    return map_index


@task
def check_pair(pair, map_index):
    assert pair == [("when", WHEN), ("n", 2)][map_index], (map_index, pair)
    return pair[0]


@task
def check_zip(pair, map_index):
    assert pair == [(WHEN, "s0"), ((1, "a"), "fill"), ({"k": Decimal("0.10")}, "fill")][map_index], pair
    return map_index


@task
def check_product(a, b, c, map_index):
    # 2 * 3 * 2 indices, the last argument varying fastest
    assert (a, b, c) == (["when", "n"][map_index // 6], [0, 1, 2][map_index // 2 % 3], "xy"[map_index % 2]), (
        map_index,
        a,
        b,
        c,
    )
    return map_index


@task
def square(x, map_index):
    if map_index == 1:
        return None  # pushes nothing: the downstream map skips it
    return x * x


@task
def check_squares(v, map_index):
    assert v == [0, 4][map_index], (map_index, v)
    return v


@task
def kwargs_list():
    return [{"x": 1, "y": "one"}, {"x": 2, "y": "two"}]


@task
def check_kwargs(x, y, map_index):
    assert (x, y) == [(1, "one"), (2, "two")][map_index] or (x, y) == [(10, "ONE"), (20, "TWO")][map_index], (x, y)
    return x


with DAG("items_kinds", schedule=None, start_date=START):
    v = values()
    check.expand(got=v)
    check_pair.expand(pair=a_dict())
    check_zip.expand(pair=v.zip(short(), fillvalue="fill"))
    check_product.expand(a=a_dict().map(lambda kv: kv[0]), b=[0, 1, 2], c=["x", "y"])
    check_squares.expand(v=square.expand(x=[0, 1, 2]))
    listed = kwargs_list()
    check_kwargs.expand_kwargs(listed)
    check_kwargs.override(task_id="check_kwargs_mapped").expand_kwargs(
        listed.map(lambda d: {"x": d["x"] * 10, "y": d["y"].upper()})
    )
"""

LOGGING_BACKEND = """
    import json
    import os

    from headrace.authoring.xcom_backend import BaseXCom

    LOG = os.path.join(os.path.dirname(__file__), "reads.jsonl")

    class LoggingXCom(BaseXCom):
        @staticmethod
        def deserialize_value(result):
            with open(LOG, "a") as f:
                f.write(json.dumps([result.task_id, result.map_index, result.value]) + "\\n")
            return BaseXCom.deserialize_value(result)
"""

BACKEND_DAG = """
from datetime import datetime

from headrace import DAG, task


@task
def numbers():
    return [1, 2, 3]


@task
def double(x):
    return x * 2


@task
def check(v, map_index):
    assert v == [2, 4, 6][map_index], (map_index, v)
    return v


with DAG("items_backend", schedule=None, start_date=datetime(2026, 1, 1)):
    check.expand(v=double.expand(x=numbers()))
"""


def run(settings: Settings, db: Database, dag_id: str) -> dict[tuple[str, int], str]:
    processor = DagProcessor(settings, db)
    assert processor.refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        trigger_dag(session, dag_id, now=datetime.now(UTC))

    def ended() -> bool:
        with db.read_session() as session:
            return session.scalar(select(DagRun.state)) in ("success", "failed")

    assert run_scheduler_until(settings, db, ended, processor=processor, timeout=240)
    processor.close()
    with db.read_session() as session:
        return {(ti.task_id, ti.map_index): ti.state for ti in session.scalars(select(TaskInstance))}


def test_each_mapped_task_instance_reads_its_own_item(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "items_dags.py", DAGS)
    states = run(fast, db, "items_kinds")
    mapped = {
        "check": 3,
        "check_pair": 2,
        "check_zip": 3,
        "check_product": 12,
        "check_squares": 2,
        "check_kwargs": 2,
        "check_kwargs_mapped": 2,
    }
    for task_id, length in mapped.items():
        assert [states.get((task_id, i)) for i in range(length)] == ["success"] * length, (task_id, states)
    assert set(states.values()) == {"success"}, states


def test_a_custom_backend_reads_one_row_of_a_mapped_upstream(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], "xcom_backend": "logging_xcom.LoggingXCom"}})
    write_dag(fast, "logging_xcom.py", LOGGING_BACKEND)
    write_dag(fast, "items_backend.py", BACKEND_DAG)
    states = run(fast, db, "items_backend")
    assert set(states.values()) == {"success"} and len(states) == 7, states
    reads = [json.loads(line) for line in Path(fast.dags_folder / "reads.jsonl").read_text().splitlines()]
    # each double[i] read numbers' whole value (a custom backend: nothing is cut out of it) ...
    assert sorted(r for r in reads if r[0] == "numbers") == [["numbers", -1, [1, 2, 3]]] * 3
    # ... and each check[i] only double's row i
    assert sorted(r for r in reads if r[0] == "double") == [["double", i, 2 * (i + 1)] for i in range(3)]
