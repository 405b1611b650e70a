"""``/api/v1/dags``: list with filters and pages, get, pause, source, tasks; each DAG's warnings."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import event, update

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel
from tests.api.conftest import ClientAs
from tests.integration.helpers import write_dag

MORE = """
    from datetime import datetime, timezone
    from headrace import DAG
    from headrace.operators import EmptyOperator

    for i in range(3):
        with DAG(f"batch_{i}", schedule="@daily", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), catchup=False,
                 tags=["batch"] + (["odd"] if i % 2 else [])):
            EmptyOperator(task_id="t")
"""


def _more_dags(settings: Settings, db: Database) -> None:
    write_dag(settings, "batch.py", MORE)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0


def test_list_filters_and_pages(api: TestClient, demo_dag: Settings, db: Database) -> None:
    _more_dags(demo_dag, db)
    body = api.get("/api/v1/dags").json()
    assert body["total_entries"] == 4
    assert [d["dag_id"] for d in body["dags"]] == ["batch_0", "batch_1", "batch_2", "demo"]
    demo = body["dags"][3]
    assert demo["tags"] == ["api", "test"] and demo["description"] == "API test DAG"
    assert demo["schedule"] is None and demo["is_paused"] is False and demo["is_active"] is True
    assert demo["fileloc"].endswith("demo.py") and demo["last_parsed_at"]
    batch = body["dags"][0]
    assert batch["schedule"] == "@daily" and batch["next_run_after"] and batch["next_logical_date"]

    page = api.get("/api/v1/dags", params={"limit": 2, "offset": 1}).json()
    assert [d["dag_id"] for d in page["dags"]] == ["batch_1", "batch_2"] and page["total_entries"] == 4
    odd = api.get("/api/v1/dags", params={"tags": "odd"}).json()
    assert [d["dag_id"] for d in odd["dags"]] == ["batch_1"] and odd["total_entries"] == 1
    both = api.get("/api/v1/dags", params=[("tags", "odd"), ("tags", "api")]).json()
    assert [d["dag_id"] for d in both["dags"]] == ["batch_1", "demo"]
    pattern = api.get("/api/v1/dags", params={"dag_id_pattern": "TCH_"}).json()
    assert pattern["total_entries"] == 3
    assert api.get("/api/v1/dags", params={"dag_id_pattern": "%"}).json()["total_entries"] == 0  # no wildcards

    assert api.patch("/api/v1/dags/batch_2", json={"is_paused": True}).json()["is_paused"] is True
    paused = api.get("/api/v1/dags", params={"paused": "true"}).json()
    assert [d["dag_id"] for d in paused["dags"]] == ["batch_2"]
    assert api.get("/api/v1/dags", params={"paused": "false"}).json()["total_entries"] == 3

    with db.session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "batch_0").values(is_active=False))
    assert api.get("/api/v1/dags").json()["total_entries"] == 3
    assert api.get("/api/v1/dags", params={"only_active": "false"}).json()["total_entries"] == 4


def test_list_rejects_bad_pages_and_filters(api: TestClient) -> None:
    for params in ({"limit": 0}, {"limit": -1}, {"offset": -1}, {"limit": "x"}, {"paused": "maybe"}):
        r = api.get("/api/v1/dags", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"]
    too_big = api.get("/api/v1/dags", params={"limit": 5000})
    assert too_big.status_code == 400
    assert too_big.json() == {"detail": "limit 5000 is above api.page_size_max (1000)", "error": "InvalidRequest"}
    assert api.get("/api/v1/dags", params={"limit": 1000}).status_code == 200
    nul = api.get("/api/v1/dags", params={"dag_id_pattern": "a\x00b"})
    assert nul.status_code == 400 and nul.json()["error"] == "InvalidRequest"


def test_get_pause_source_tasks(api: TestClient, client_as: ClientAs, demo_dag: Settings) -> None:
    dag = api.get("/api/v1/dags/demo").json()
    assert dag["dag_id"] == "demo" and dag["max_active_runs"] >= 1 and dag["max_active_tasks"] >= 1

    viewer = client_as("viewer")
    refused = viewer.patch("/api/v1/dags/demo", json={"is_paused": True})
    assert refused.status_code == 403 and refused.json()["error"] == "PermissionDenied"
    operator = client_as("operator")
    assert operator.patch("/api/v1/dags/demo", json={"is_paused": True}).json()["is_paused"] is True
    assert viewer.get("/api/v1/dags/demo").json()["is_paused"] is True
    assert operator.patch("/api/v1/dags/demo", json={"is_paused": False}).json()["is_paused"] is False
    assert operator.patch("/api/v1/dags/demo", json={"is_paused": "perhaps"}).status_code == 422
    assert operator.patch("/api/v1/dags/demo", json={}).status_code == 422

    source = viewer.get("/api/v1/dags/demo/source").json()
    assert source["fileloc"].endswith("demo.py")
    assert 'with DAG("demo"' in source["content"]

    tasks = viewer.get("/api/v1/dags/demo/tasks").json()
    assert tasks["total_entries"] == 4
    by_id = {t["task_id"]: t for t in tasks["tasks"]}
    assert by_id["extract"]["operator"] == "PythonOperator" and by_id["extract"]["retries"] == 2
    assert by_id["extract"]["downstream_task_ids"] == ["echo", "explode"]
    assert by_id["after"]["upstream_task_ids"] == ["explode"] and by_id["after"]["operator"] == "BashOperator"
    assert by_id["after"]["trigger_rule"] == "all_success" and by_id["after"]["pool"] == "default_pool"
    assert "memory_limit_bytes" in by_id["after"] and "execution_timeout_seconds" in by_id["after"]
    assert (by_id["after"]["weight_rule"], by_id["after"]["depends_on_past"], by_id["after"]["is_setup"]) == (
        "downstream",
        False,
        False,
    )
    assert viewer.get("/api/v1/dags/demo/tasks/explode").json()["upstream_task_ids"] == ["extract"]
    assert viewer.get("/api/v1/dags/demo/tasks/nope").json()["error"] == "TaskNotFound"


def test_unknown_dag_and_no_login(api: TestClient, anon: TestClient, demo_dag: Settings) -> None:
    for path in ("/api/v1/dags/nope", "/api/v1/dags/nope/source", "/api/v1/dags/nope/tasks"):
        r = api.get(path)
        assert r.status_code == 404 and r.json() == {"detail": "DAG 'nope' not found", "error": "DagNotFound"}
    assert api.patch("/api/v1/dags/nope", json={"is_paused": True}).status_code == 404
    for method, path in (
        ("GET", "/api/v1/dags"),
        ("GET", "/api/v1/dags/demo"),
        ("PATCH", "/api/v1/dags/demo"),
        ("GET", "/api/v1/dags/demo/source"),
        ("GET", "/api/v1/dags/demo/tasks"),
    ):
        r = anon.request(method, path, json={"is_paused": True})
        assert r.status_code == 401 and r.json()["error"] == "AuthenticationError", path


def test_source_of_a_deleted_file_is_404(api: TestClient, demo_dag: Settings) -> None:
    (demo_dag.dags_folder / "demo.py").unlink()
    r = api.get("/api/v1/dags/demo/source")
    assert r.status_code == 404 and "cannot be read" in r.json()["detail"]


WARNED = """
    from headrace import DAG
    from headrace.operators import BashOperator, EmptyOperator

    with DAG("warned", default_args={"email": ["ops@example.com"], "colour": "blue"}):
        BashOperator(task_id="notify", bash_command="echo hi", email_on_failure=True)
        EmptyOperator(task_id="quiet")
"""
"""DAG ``warned``: an unsupported operator argument, an unsupported and an unused ``default_args`` key."""

WARNED_MESSAGES = [
    "task 'notify': argument 'email_on_failure' is an Airflow operator argument headrace does not support yet; "
    "it is ignored",
    "default_args key 'colour' is accepted by no task of DAG 'warned'; it is ignored",
    "default_args key 'email' is an Airflow operator argument headrace does not support yet; it is ignored",
]


def test_dags_carry_their_warnings(api: TestClient, client_as: ClientAs, demo_dag: Settings, db: Database) -> None:
    write_dag(demo_dag, "warned.py", WARNED)
    _more_dags(demo_dag, db)
    body = api.get("/api/v1/dags").json()
    by_id = {d["dag_id"]: d for d in body["dags"]}
    assert by_id["demo"]["warnings"] == [] and by_id["batch_0"]["warnings"] == []
    warned = by_id["warned"]["warnings"]
    assert [w["message"] for w in warned] == WARNED_MESSAGES
    assert [w["warning_type"] for w in warned] == ["unsupported_argument", "unused_default_arg", "unsupported_argument"]
    assert all(w["timestamp"] == by_id["warned"]["last_parsed_at"] for w in warned)
    assert set(warned[0]) == {"warning_type", "message", "timestamp"}

    viewer = client_as("viewer")
    assert viewer.get("/api/v1/dags/warned").json()["warnings"] == warned
    assert viewer.get("/api/v1/dags/demo").json()["warnings"] == []
    assert api.patch("/api/v1/dags/warned", json={"is_paused": True}).json()["warnings"] == warned
    page = api.get("/api/v1/dags", params={"limit": 1, "offset": 4}).json()
    assert [d["dag_id"] for d in page["dags"]] == ["warned"] and page["dags"][0]["warnings"] == warned


def test_dags_list_reads_warnings_in_one_query(api: TestClient, demo_dag: Settings, db: Database) -> None:
    write_dag(demo_dag, "warned.py", WARNED)
    _more_dags(demo_dag, db)
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert api.get("/api/v1/dags").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert sum("dag_warning" in s for s in statements) == 1, statements


def test_a_fixed_file_drops_its_warnings(api: TestClient, demo_dag: Settings, db: Database) -> None:
    path = write_dag(demo_dag, "warned.py", WARNED)
    assert DagProcessor(demo_dag, db).refresh(datetime.now(UTC)).errors == 0
    assert len(api.get("/api/v1/dags/warned").json()["warnings"]) == 3
    fixed = WARNED.replace(", email_on_failure=True", "").replace('"colour": "blue"', '"retries": 1')
    write_dag(demo_dag, "warned.py", fixed)
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))  # a new mtime even on a coarse clock
    assert DagProcessor(demo_dag, db).refresh(datetime.now(UTC)).errors == 0
    assert [w["message"] for w in api.get("/api/v1/dags/warned").json()["warnings"]] == [WARNED_MESSAGES[2]]


def test_dag_display_name_is_in_the_api_and_defaults_to_the_dag_id(
    api: TestClient, settings: Settings, db: Database
) -> None:
    write_dag(
        settings,
        "named.py",
        """
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("named", dag_display_name="Nightly — sales (EU)"):
            EmptyOperator(task_id="t")
        with DAG("unnamed"):
            EmptyOperator(task_id="t")
        """,
    )
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    assert api.get("/api/v1/dags/named").json()["dag_display_name"] == "Nightly — sales (EU)"
    assert api.get("/api/v1/dags/unnamed").json()["dag_display_name"] == "unnamed"
    listed = {d["dag_id"]: d["dag_display_name"] for d in api.get("/api/v1/dags").json()["dags"]}
    assert listed["named"] == "Nightly — sales (EU)"
