"""XCom values beyond JSON through a real scheduler, and the XCom backend setting, on both databases.

One task returns dataclasses, a pydantic model, a pandas DataFrame, numpy values and the standard types
JSON lacks; another task pulls them and checks each type and value in its own process. The API shows
them as the backend's ``orm_deserialize_value`` (no class imported). A custom backend from the DAGs
folder, named by ``core.xcom_backend``, stores values in files and keeps a reference in the table; a
backend that cannot be imported fails the try with a message naming the setting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry, XCom
from headrace.scheduler.runs import trigger_dag
from headrace.webapp import create_app
from tests.api.conftest import PASSWORD
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

TYPES_DAG = """
    import dataclasses
    import decimal
    import pathlib
    import uuid
    from datetime import date, datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    import numpy as np
    import pandas as pd
    import pydantic

    from headrace import DAG, task

    @dataclasses.dataclass
    class Point:
        x: int
        when: datetime

    @dataclasses.dataclass
    class Shape:
        name: str
        corners: list
        origin: Point

    class Order(pydantic.BaseModel):
        id: int
        amount: decimal.Decimal
        placed: datetime

    PLACED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    def values():
        return {
            "shape": Shape("tri", [Point(0, PLACED), Point(1, PLACED)], Point(2, PLACED)),
            "order": Order(id=7, amount=decimal.Decimal("12.30"), placed=PLACED),
            "frame": pd.DataFrame({"a": [1, 2], "b": [0.5, float("nan")], "c": ["x", "y"]}),
            "array": np.arange(6, dtype=np.float32).reshape(2, 3),
            "i64": np.int64(41),
            "f64": np.float64(2.5),
            "local": datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Paris")),
            "day": date(2026, 1, 1),
            "delta": timedelta(hours=1, microseconds=5),
            "money": decimal.Decimal("0.10"),
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "path": pathlib.Path("/data/in.csv"),
            "tags": {"a", "b"},
            "pair": (1, "one"),
        }

    with DAG("xcom_types", schedule=None, start_date=datetime(2026, 1, 1)):

        @task
        def produce():
            return values()

        @task
        def consume(got):
            want = values()
            assert set(got) == set(want), sorted(got)
            pd.testing.assert_frame_equal(got.pop("frame"), want.pop("frame"))
            array = got.pop("array")
            assert array.dtype == np.float32 and (array == want.pop("array")).all()
            for key, value in want.items():
                assert got[key] == value and type(got[key]) is type(value), (key, got[key])
            assert type(got["shape"].origin) is Point and type(got["shape"].corners[0]) is Point
            assert got["local"].tzinfo == ZoneInfo("Europe/Paris")
            return "checked"

        consume(produce())
"""

FILE_BACKEND = """
    import json
    import os
    import uuid

    from headrace.authoring.xcom_backend import BaseXCom

    FOLDER = os.path.join(os.path.dirname(__file__), "xcom_store")

    class FileXCom(BaseXCom):
        @staticmethod
        def serialize_value(value, *, key=None, task_id=None, dag_id=None, run_id=None, map_index=None):
            os.makedirs(FOLDER, exist_ok=True)
            path = os.path.join(FOLDER, f"{task_id}-{key}-{uuid.uuid4().hex}.json")
            with open(path, "w") as f:
                json.dump(BaseXCom.serialize_value(value), f)
            return "file://" + path

        @staticmethod
        def deserialize_value(result):
            with open(result.value.removeprefix("file://")) as f:
                return BaseXCom.deserialize_value(BaseXCom(value=json.load(f)))

        def orm_deserialize_value(self):
            return f"stored in {os.path.basename(self.value)}"
"""

SMALL_DAG = """
    from datetime import datetime
    from decimal import Decimal

    from headrace import DAG, task

    with DAG("xcom_backend", schedule=None, start_date=datetime(2026, 1, 1)):

        @task
        def produce():
            return {"total": Decimal("9.99"), "at": datetime(2026, 1, 1)}

        @task
        def consume(got):
            assert got == {"total": Decimal("9.99"), "at": datetime(2026, 1, 1)}, got
            return "checked"

        consume(produce())

        @task
        def numbers():
            return [1, 2, 3]

        @task
        def double(x):
            return Decimal(x) * 2

        @task
        def total(values):  # a mapped task's values: the backend reads each index's XCom on its own
            assert list(values) == [Decimal(2), Decimal(4), Decimal(6)], values
            return "summed"

        total(double.expand(x=numbers()))
"""


def run_once(settings: Settings, db: Database, dag_id: str) -> str:
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        run_id = trigger_dag(session, dag_id, now=datetime.now(UTC)).run_id
    run_scheduler_until_done(settings, db, timeout=120)
    return run_id


def states(db: Database) -> dict[str, str]:
    with db.read_session() as session:
        return {t.task_id: t.state for t in session.scalars(select(TaskInstance))}


def client(settings: Settings, db: Database) -> TestClient:
    with db.session() as session:
        user = create_user(session, "viewer-xcom", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "test", now=datetime.now(UTC))
    return TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"})


ALLOW_DAG_CLASSES = {"allowed_deserialization_classes": "headrace.* headrace_dag_*"}
"""The DAG file's own dataclasses and pydantic model are rebuilt only once allowed (Airflow's rule)."""


def test_values_beyond_json_round_trip_between_tasks(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], **ALLOW_DAG_CLASSES}})
    write_dag(fast, "xcom_types.py", TYPES_DAG)
    run_id = run_once(fast, db, "xcom_types")
    assert states(db) == {"produce": "success", "consume": "success"}

    with client(fast, db) as api:
        entry = api.get(f"/api/v1/dags/xcom_types/dagRuns/{run_id}/taskInstances/produce/xcomEntries/return_value")
    assert entry.status_code == 200
    shown = entry.json()["value"]
    assert shown["order"] == {
        "__class__": f"{_module(db)}.Order",
        "id": 7,
        "amount": "12.30",
        "placed": "2026-01-02T03:04:05Z",
    }
    assert shown["shape"]["origin"] == {
        "__class__": f"{_module(db)}.Point",
        "x": 2,
        "when": "2026-01-02T03:04:05+00:00",
    }
    assert shown["frame"]["data"][1] == {"index": 1, "a": 2, "b": None, "c": "y"}
    assert shown["array"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and shown["i64"] == 41
    assert shown["money"] == "0.10" and shown["path"] == "/data/in.csv" and sorted(shown["tags"]) == ["a", "b"]


def _module(db: Database) -> str:
    """The module name DAG classes are stored under (the DAG file's, as the loader imports it)."""
    with db.read_session() as session:
        stored = json.loads(session.scalars(select(XCom.value).where(XCom.task_id == "produce")).one())
    return str(stored["order"]["class"]).partition(":")[0]


def test_a_custom_backend_from_the_setting(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], "xcom_backend": "file_xcom.FileXCom"}})
    write_dag(fast, "file_xcom.py", FILE_BACKEND)  # a helper module in the DAGs folder (no DAG in it)
    write_dag(fast, "xcom_backend.py", SMALL_DAG)
    run_id = run_once(fast, db, "xcom_backend")
    assert set(states(db).values()) == {"success"} and "total" in states(db), states(db)
    with db.read_session() as session:
        stored = json.loads(session.scalars(select(XCom.value).where(XCom.task_id == "produce")).one())
    assert isinstance(stored, str) and stored.startswith("file://")
    assert json.loads(Path(stored.removeprefix("file://")).read_text())["total"] == {"__hr__": "decimal", "v": "9.99"}
    with client(fast, db) as api:
        entry = api.get(f"/api/v1/dags/xcom_backend/dagRuns/{run_id}/taskInstances/produce/xcomEntries/return_value")
    assert entry.json()["value"] == f"stored in {Path(stored).name}"


def test_a_backend_that_cannot_be_imported_fails_the_try_naming_the_setting(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], "xcom_backend": "no_such_module.XCom"}})
    write_dag(fast, "xcom_backend.py", SMALL_DAG)
    run_once(fast, db, "xcom_backend")
    assert states(db)["produce"] == "failed"
    with db.read_session() as session:
        error = session.scalars(select(TaskTry.error).where(TaskTry.task_id == "produce")).first()
    assert error is not None and "core.xcom_backend = 'no_such_module.XCom' cannot be imported" in error


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a policy of the pulling task, not SQL
@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ({}, "failed"),  # the default, headrace.* (Airflow's airflow.*): a DAG file's classes are refused
        ({"allowed_deserialization_classes": "headrace.* other.*"}, "failed"),
        ({"allowed_deserialization_classes_regexp": r"headrace_dag_[0-9a-f]+\.(Point|Shape|Order)$"}, "success"),
    ],
)
def test_core_allowed_deserialization_classes_decides_which_classes_a_pull_rebuilds(
    settings: Settings, db: Database, allowed: dict[str, str], expected: str
) -> None:
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], **allowed}})
    write_dag(fast, "xcom_types.py", TYPES_DAG)
    run_once(fast, db, "xcom_types")
    assert states(db) == {"produce": "success", "consume": expected}  # pushing is never limited
    if expected == "failed":
        with db.read_session() as session:
            error = session.scalars(select(TaskTry.error).where(TaskTry.task_id == "consume")).first()
        assert error is not None and "was not found in allow list for deserialization imports" in error, error
        assert "core.allowed_deserialization_classes" in error
