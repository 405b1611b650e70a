"""The supervisor's ``GetMappedItems`` answer, on SQLite and PostgreSQL: one map index's items, cut out of the
stored values (default encoding), one row of a mapped task, or a custom backend's whole value; None where the
task process must read whole values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from headrace.authoring.xcom import serialize_xcom
from headrace.authoring.xcom_backend import BaseXCom
from headrace.authoring.xcom_serde import decode
from headrace.db.engine import Database
from headrace.db.models import TaskMap, XCom
from headrace.supervisor.mapped_items import get_mapped_items, split_map_index
from headrace.supervisor.protocol import GetMappedItems
from headrace.supervisor.store import TryTarget

from .tryrows import create_run, write_dag

DAG = """
with DAG("items", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def noop(x):
        return x
    noop.expand(x=[1])
"""


def _target(db: Database, tmp_path: Path) -> TryTarget:
    run_pk = create_run(db, write_dag(tmp_path / "dags", DAG), "items")
    return TryTarget(ti_id=1, dag_run_pk=run_pk, dag_id="items", run_id="manual__1", task_id="noop", map_index=0)


def _push(db: Database, target: TryTarget, task_id: str, value: Any, map_index: int = -1, *, text: str = "") -> None:
    with db.session() as session:
        session.add(
            XCom(
                dag_run_id=target.dag_run_pk,
                dag_id=target.dag_id,
                run_id=target.run_id,
                task_id=task_id,
                map_index=map_index,
                key="return_value",
                value=text or serialize_xcom(value, 1 << 20),
                created_at=datetime.now(UTC),
            )
        )
        if map_index == -1 and isinstance(value, (list, tuple, dict)):
            session.add(
                TaskMap(
                    dag_run_id=target.dag_run_pk,
                    task_id=task_id,
                    map_index=-1,
                    dag_id=target.dag_id,
                    run_id=target.run_id,
                    length=len(value),
                    keys=None,
                )
            )


def _ask(db: Database, target: TryTarget, specs: list[dict[str, Any]], index: int, pick: bool = True) -> Any:
    return get_mapped_items(db, target, GetMappedItems(specs=specs, map_index=index, pick=pick)).items


def _xcom(task_id: str, mapped: bool = False) -> dict[str, Any]:
    return {"xcom": task_id, "key": "return_value", "mapped": mapped}


def _value(item: dict[str, Any]) -> Any:
    return decode(json.loads(item["value_json"]))


def test_split_map_index_counts_as_the_expansion() -> None:
    assert [split_map_index(i, [2, 3]) for i in range(6)] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert split_map_index(6, [2, 3]) is None
    assert split_map_index(0, [2, 0]) is None
    assert split_map_index(-1, [2]) is None


def test_one_item_of_a_stored_list_tuple_or_dict(db: Database, tmp_path: Path) -> None:
    target = _target(db, tmp_path)
    when = datetime(2026, 5, 1, 12, tzinfo=UTC)
    _push(db, target, "a_list", [when, ("x", 1), {"k": [1, 2]}])
    _push(db, target, "a_tuple", (10, 20))
    _push(db, target, "a_dict", {"b": when, "a": 2})
    _push(db, target, "int_keys", {3: "three", 1: "one"})

    (item,) = _ask(db, target, [_xcom("a_list")], 1)
    assert item["index"] == 1 and item["map_index"] == -1 and "whole" not in item
    assert _value(item) == ("x", 1)  # only the item crosses: its stored form, not the list's
    assert json.loads(item["value_json"]) == {"__hr__": "tuple", "v": ["x", 1]}
    assert _value(_ask(db, target, [_xcom("a_list")], 0)[0]) == when
    assert _value(_ask(db, target, [_xcom("a_tuple")], 1)[0]) == 20
    # a dict's items are its (key, value) pairs, in order
    assert [_value(_ask(db, target, [_xcom("a_dict")], i)[0]) for i in (0, 1)] == [("b", when), ("a", 2)]
    assert [_value(_ask(db, target, [_xcom("int_keys")], i)[0]) for i in (0, 1)] == [(3, "three"), (1, "one")]
    # past the end, or a value that is not a list or dict: the task process reads whole values (and fails there)
    assert _ask(db, target, [_xcom("a_tuple")], 2) is None
    _push(db, target, "a_str", "text")
    assert _ask(db, target, [_xcom("a_str")], 0) is None
    assert _ask(db, target, [_xcom("missing")], 0) is None


def test_a_mapped_tasks_values_by_map_index(db: Database, tmp_path: Path) -> None:
    target = _target(db, tmp_path)
    for index, value in ((0, "zero"), (2, "two"), (3, "three")):  # index 1 pushed nothing
        _push(db, target, "up", value, index)
    items = [_ask(db, target, [_xcom("up", mapped=True)], i)[0] for i in range(3)]
    assert [(i["map_index"], _value(i)) for i in items] == [(0, "zero"), (2, "two"), (3, "three")]
    assert _ask(db, target, [_xcom("up", mapped=True)], 3) is None


def test_cross_product_zip_and_literals(db: Database, tmp_path: Path) -> None:
    target = _target(db, tmp_path)
    _push(db, target, "xs", [1, 2])
    _push(db, target, "ys", ["a", "b", "c"])
    specs = [{"literal": 2}, _xcom("xs"), _xcom("ys")]  # 2 * 2 * 3 = 12 indices, the last fastest
    lit, x, y = _ask(db, target, specs, 7)  # 7 = 1*6 + 0*3 + 1
    assert lit == {"index": 1} and (_value(x), _value(y)) == (1, "b")
    assert _ask(db, target, specs, 12) is None

    zipped = {"zip": [_xcom("xs"), _xcom("ys")], "longest": False}
    (item,) = _ask(db, target, [zipped], 1)
    assert [_value(p) for p in item["parts"]] == [2, "b"]
    assert _ask(db, target, [zipped], 2) is None  # as long as the shortest
    longest = {"zip": [_xcom("xs"), _xcom("ys")], "longest": True}
    (item,) = _ask(db, target, [longest], 2)
    assert item["parts"][0] is None and _value(item["parts"][1]) == "c"  # past xs' end: the fill value


@pytest.mark.parametrize("mapped", [False, True])
def test_a_custom_backend_gets_whole_unmapped_values_and_single_mapped_rows(
    db: Database, tmp_path: Path, mapped: bool
) -> None:
    target = _target(db, tmp_path)
    if mapped:
        for i in range(3):
            _push(db, target, "up", None, i, text=json.dumps(f"/store/{i}"))
    else:
        _push(db, target, "up", [0, 1, 2], text=json.dumps("/store/list"))
    (item,) = _ask(db, target, [_xcom("up", mapped)], 2, pick=False)
    if mapped:
        assert (item["value_json"], item["map_index"], item.get("whole")) == ('"/store/2"', 2, None)
    else:  # what the backend stored for the list: its length comes from task_map
        assert (item["value_json"], item["index"], item["whole"]) == ('"/store/list"', 2, True)
    assert BaseXCom.deserialize_value(BaseXCom(value=json.loads(item["value_json"]))).startswith("/store/")
