"""XCom values over core.xcom_objectstorage_threshold go to the object store (a real S3 server on loopback)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from headrace.api.users import create_token, create_user
from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, XCom
from headrace.exceptions import ConfigError, XComError
from headrace.scheduler.user_actions import clear_task_instances
from headrace.storage.stores import Stores
from headrace.storage.xcoms import XComObjects, is_reference
from headrace.supervisor.protocol import SetXCom
from headrace.supervisor.task_requests import TryTarget, set_xcom
from headrace.webapp import create_app
from tests.api.conftest import PASSWORD
from tests.integration.helpers import FAST, parse_and_trigger, run_scheduler_until_done, write_dag
from tests.s3 import S3Server, add_s3_connection

BIG_DAG = """
    from headrace import DAG, task

    with DAG("big_xcom"):
        @task
        def produce():
            return {"rows": list(range(2000)), "small": False}

        @task
        def small():
            return "tiny"

        @task
        def consume(value, tiny):
            assert value == {"rows": list(range(2000)), "small": False}, value
            assert tiny == "tiny"
            return len(value["rows"])

        consume(produce(), small())
"""


def _rows(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {x.task_id: x.value for x in session.scalars(select(XCom).where(XCom.key == "return_value"))}


def test_a_large_xcom_goes_to_the_store_is_pulled_shown_and_deleted_on_clear(
    settings: Settings, db: Database, s3_server: S3Server
) -> None:
    bucket = s3_server.make_bucket(f"xcoms-{uuid.uuid4().hex[:12]}")
    conn_id = add_s3_connection(settings, db, s3_server, "xcom_store")
    stored = settings.with_overrides(
        {
            **FAST,
            "core": {
                **FAST["core"],
                "xcom_objectstorage_path": f"s3://{conn_id}@{bucket}/xcoms",  # the connection named in the URL
                "xcom_objectstorage_threshold": 1000,
                "xcom_objectstorage_compression": "gzip",
            },
        }
    )
    write_dag(stored, "big_xcom.py", BIG_DAG)
    run_id = parse_and_trigger(stored, db, "big_xcom")
    run_scheduler_until_done(stored, db)
    with db.session() as session:
        states = {ti.task_id: ti.state for ti in session.scalars(select(TaskInstance))}
    assert states == {"produce": "success", "small": "success", "consume": "success"}  # consume checked the value
    rows = _rows(db)
    assert is_reference(rows["produce"]) and not is_reference(rows["small"]) and rows["consume"] == "2000"
    reference = json.loads(rows["produce"])
    assert reference["url"].startswith(f"s3://{bucket}/xcoms/dag_id=big_xcom/") and reference["url"].endswith(".gz")
    (first_key,) = s3_server.keys(bucket)
    assert reference["url"] == f"s3://{bucket}/{first_key}"

    with db.session() as session:
        user = create_user(session, "xcom-viewer", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
    api = TestClient(create_app(stored, db), headers={"Authorization": f"Bearer {token}"})
    shown = api.get(f"/api/v1/dags/big_xcom/dagRuns/{run_id}/taskInstances/produce/xcomEntries/return_value").json()
    assert shown["value"] == {"rows": list(range(2000)), "small": False}
    listed = api.get(f"/api/v1/dags/big_xcom/dagRuns/{run_id}/taskInstances/produce/xcomEntries").json()
    (entry,) = listed["xcom_entries"]  # a list shows the reference (no read per row), as Airflow's does
    assert entry["value"] == reference and sorted(reference) == ["__hr__", "size", "url"]

    with db.session() as session:
        run = session.scalars(select(DagRun)).one()
        clear_task_instances(session, run, ["produce"], include_downstream=True, now=datetime.now(UTC))
    run_scheduler_until_done(stored, db)
    (second_key,) = s3_server.keys(bucket)  # the cleared value's object went with its row
    assert second_key != first_key
    assert json.loads(_rows(db)["produce"])["url"] == f"s3://{bucket}/{second_key}"


def test_file_store_round_trip_and_references_outside_it_are_refused(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "HEADRACE_HOME": str(tmp_path),
            "HEADRACE__CORE__XCOM_OBJECTSTORAGE_PATH": f"file://{tmp_path / 'store'}",
            "HEADRACE__CORE__XCOM_OBJECTSTORAGE_THRESHOLD": "10",
            "HEADRACE__CORE__XCOM_OBJECTSTORAGE_COMPRESSION": "lzma",
        }
    )
    xcoms = XComObjects(Stores(settings, None))
    assert xcoms.offload('"short"', dag_id="d", run_id="r/1", task_id="t") == '"short"'  # under 10 bytes: kept
    assert xcoms.offload('"9 bytes"', dag_id="d", run_id="r/1", task_id="t") == '"9 bytes"'
    at_threshold = xcoms.offload(
        '"10 bytes"', dag_id="d", run_id="r/1", task_id="t"
    )  # Airflow's rule: `< threshold` stays
    assert is_reference(at_threshold) and json.loads(at_threshold)["size"] == 10
    assert xcoms.purge([at_threshold]) == 1
    value = json.dumps({"text": "x" * 500})
    ref = xcoms.offload(value, dag_id="d", run_id="r/1", task_id="t")
    assert is_reference(ref) and xcoms.resolve(ref) == value
    (path,) = (tmp_path / "store").rglob("*.json.xz")
    assert "run_id=r%2F1" in str(path)
    forged = ref.replace(str(tmp_path / "store"), str(tmp_path))
    with pytest.raises(XComError, match="outside core.xcom_objectstorage_path"):
        xcoms.resolve(forged)
    assert xcoms.purge([ref, '"plain"', forged]) == 1 and not path.exists()
    with pytest.raises(XComError, match="gone"):
        xcoms.resolve(ref)


def test_unknown_compression_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="xcom_objectstorage_compression.*'zstd' is not one of"):
        load_settings({"HEADRACE_HOME": str(tmp_path), "HEADRACE__CORE__XCOM_OBJECTSTORAGE_COMPRESSION": "zstd"})


def test_the_stored_object_is_deleted_when_the_xcom_row_cannot_be_written(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The value goes to the store before the row is written: a row that cannot be committed (here: its DAG run is
    gone, a foreign key violation) must not leave its object behind."""
    store = tmp_path / "store"
    stored = settings.with_overrides(
        {"core": {"xcom_objectstorage_path": f"file://{store}", "xcom_objectstorage_threshold": 0}}
    )
    xcoms = XComObjects(Stores(stored, None))
    target = TryTarget(ti_id=1, dag_run_pk=987654, dag_id="d", run_id="r", task_id="t")
    with pytest.raises(IntegrityError):
        set_xcom(db, target, SetXCom(key="return_value", value_json='{"big": true}'), 1 << 20, xcoms)
    assert store.exists() and not [p for p in store.rglob("*") if p.is_file()]  # written, then deleted
