"""``/api/v1/dags/{dag_id}/dagRuns``: trigger, list with filters, get, mark."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.states import TaskInstanceState as TI
from tests.api.conftest import ClientAs, served_client
from tests.scheduler.conftest import move_ti, tis

RUNS = "/api/v1/dags/demo/dagRuns"


def test_trigger_get_and_list(api: TestClient, client_as: ClientAs, demo_dag: Settings) -> None:
    operator = client_as("operator")
    made = operator.post(
        RUNS,
        json={
            "dag_run_id": "first",
            "logical_date": "2024-03-01T12:00:00+02:00",
            "conf": {"n": 3, "names": ["a", "b"]},
        },
    )
    assert made.status_code == 200, made.text
    run = made.json()
    assert run["dag_run_id"] == "first" and run["dag_id"] == "demo" and run["run_type"] == "manual"
    assert run["state"] == "queued" and run["conf"] == {"n": 3, "names": ["a", "b"]}
    assert run["logical_date"] == "2024-03-01T10:00:00Z"
    assert run["data_interval_start"] == run["data_interval_end"] == run["logical_date"]
    assert run["queued_at"] and run["start_date"] is None and run["end_date"] is None
    assert api.get(f"{RUNS}/first").json() == run

    default = operator.post(RUNS, json={}).json()
    assert default["dag_run_id"].startswith("manual__") and default["conf"] == {}
    naive = operator.post(RUNS, json={"logical_date": "2024-01-01T00:00:00"}).json()
    assert naive["logical_date"] == "2024-01-01T00:00:00Z"  # no timezone: UTC

    listed = api.get(RUNS).json()
    assert listed["total_entries"] == 3
    assert [r["dag_run_id"] for r in listed["dag_runs"]] == [default["dag_run_id"], "first", naive["dag_run_id"]]
    oldest = api.get(RUNS, params={"order_by": "logical_date", "limit": 1}).json()
    assert [r["dag_run_id"] for r in oldest["dag_runs"]] == [naive["dag_run_id"]] and oldest["total_entries"] == 3
    window = api.get(
        RUNS, params={"logical_date_gte": "2024-02-01T00:00:00Z", "logical_date_lte": "2024-03-02T00:00:00Z"}
    ).json()
    assert [r["dag_run_id"] for r in window["dag_runs"]] == ["first"] and window["total_entries"] == 1
    assert api.get(RUNS, params={"state": "queued"}).json()["total_entries"] == 3
    assert api.get(RUNS, params={"state": "running"}).json()["total_entries"] == 0
    assert api.get(RUNS, params={"run_type": "scheduled"}).json()["total_entries"] == 0
    assert api.get(RUNS, params={"offset": 2}).json()["dag_runs"][0]["dag_run_id"] == naive["dag_run_id"]


def test_trigger_errors(api: TestClient, client_as: ClientAs, anon: TestClient, demo_dag: Settings) -> None:
    assert api.post(RUNS, json={"dag_run_id": "x", "logical_date": "2024-01-01T00:00:00Z"}).status_code == 200
    dup = api.post(RUNS, json={"dag_run_id": "x"})
    assert dup.status_code == 409 and dup.json()["error"] == "DagRunAlreadyExists"
    same_date = api.post(RUNS, json={"logical_date": "2024-01-01T00:00:00Z"})
    assert same_date.status_code == 409 and "logical date" in same_date.json()["detail"]
    for conf in ([1, 2], "text", 5, {"x": float("nan")}):
        r = api.post(RUNS, content=json.dumps({"conf": conf}), headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "DagRunConfError", (conf, r.text)
    assert api.post(RUNS, json={"conf": {"a": "nul\x00"}}).status_code == 400
    assert api.post(RUNS, json={"logical_date": "yesterday"}).status_code == 422
    assert api.post(RUNS, json={"dag_run_id": ""}).status_code == 422
    assert api.post(RUNS, json={"dag_run_id": "x" * 251}).status_code == 422
    for odd in ("a/b", "a b", "a?b", "é", "x\n"):  # scheduler.allowed_run_id_pattern (Airflow's default)
        r = api.post(RUNS, json={"dag_run_id": odd})
        assert r.status_code == 400 and r.json()["error"] == "InvalidRequest", (odd, r.text)
        assert "allowed_run_id_pattern" in r.json()["detail"]
    assert api.post(RUNS, json={"dag_run_id": "ok_2024-01-02T00:00:00+00:00.~"}).status_code == 200
    assert api.post(RUNS, json={"surprise": 1}).status_code == 422
    assert api.post("/api/v1/dags/nope/dagRuns", json={}).json()["error"] == "DagNotFound"
    viewer = client_as("viewer")
    refused = viewer.post(RUNS, json={})
    assert refused.status_code == 403 and refused.json()["error"] == "PermissionDenied"
    assert anon.post(RUNS, json={}).status_code == 401
    assert anon.get(RUNS).status_code == 401 and anon.get(f"{RUNS}/x").status_code == 401
    assert api.get(f"{RUNS}/nope").json() == {"detail": "DAG 'demo' has no run 'nope'", "error": "DagRunNotFound"}
    assert api.get("/api/v1/dags/nope/dagRuns/x").json()["error"] == "DagNotFound"
    assert api.get("/api/v1/dags/nope/dagRuns").status_code == 404
    assert api.get(RUNS, params={"order_by": "colour"}).status_code == 422
    assert api.get(RUNS, params={"state": "sleepy"}).status_code == 422
    assert api.get(RUNS, params={"logical_date_gte": "soon"}).status_code == 422


def _states(db: Database, run_id: str) -> tuple[str, dict[str, str]]:
    with db.session() as session:
        run = session.scalars(select(DagRun).where(DagRun.run_id == run_id)).one()
        rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_run_id == run.id))
        tis = {t.task_id: t.state for t in rows}
        return run.state, tis


def test_mark_run_success_and_failed(api: TestClient, client_as: ClientAs, db: Database, demo_dag: Settings) -> None:
    operator = client_as("operator")
    for rid, date in (("good", "2024-01-01T00:00:00Z"), ("bad", "2024-01-02T00:00:00Z")):
        assert operator.post(RUNS, json={"dag_run_id": rid, "logical_date": date}).status_code == 200
    # "bad": extract succeeded, explode is running, echo is up for retry, after has not started.
    bad = tis(db, "bad")
    move_ti(db, bad["extract"].id, TI.SUCCESS)
    move_ti(db, bad["explode"].id, TI.RUNNING)
    move_ti(db, bad["echo"].id, TI.UP_FOR_RETRY)

    viewer = client_as("viewer")
    assert viewer.patch(f"{RUNS}/good", json={"state": "success"}).status_code == 403
    assert operator.patch(f"{RUNS}/good", json={"state": "running"}).status_code == 422
    assert operator.patch(f"{RUNS}/nope", json={"state": "success"}).status_code == 404

    marked = operator.patch(f"{RUNS}/good", json={"state": "success"})
    assert marked.status_code == 200, marked.text
    assert marked.json()["state"] == "success" and marked.json()["end_date"]
    assert _states(db, "good") == ("success", dict.fromkeys(["after", "echo", "explode", "extract"], "success"))

    failed = operator.patch(f"{RUNS}/bad", json={"state": "failed"}).json()
    assert failed["state"] == "failed"
    # Airflow's rule: running → failed, the other unfinished → skipped, finished ones stay.
    assert _states(db, "bad") == (
        "failed",
        {"extract": "success", "explode": "failed", "echo": "skipped", "after": "skipped"},
    )
    # A finished run can be marked the other way; its unfinished task instances (none left) stay.
    again = operator.patch(f"{RUNS}/bad", json={"state": "success"}).json()
    assert again["state"] == "success"
    assert _states(db, "bad")[1]["explode"] == "failed"
    # Marking a run with the state it has is a no-op, not an error.
    assert operator.patch(f"{RUNS}/good", json={"state": "success"}).json()["state"] == "success"


def test_conf_over_max_conf_bytes_is_413_on_the_real_server(demo_dag: Settings, db: Database) -> None:
    """A conf within the request limit (1 MiB) but over api.max_conf_bytes (64 KiB) is refused, limit named."""
    with served_client(demo_dag, db, "operator", "conf-op") as client:
        big = client.post(RUNS, json={"dag_run_id": "big", "conf": {"blob": "x" * 100_000}})
        assert big.status_code == 413, big.text[:300]
        assert big.json() == {
            "detail": "conf is 100,011 bytes of JSON, above the limit of 65,536 bytes (api.max_conf_bytes)",
            "error": "DagRunConfTooLarge",
        }
        fits = client.post(RUNS, json={"dag_run_id": "fits", "conf": {"blob": "é" * 30_000}})  # 60,011 bytes
        assert fits.status_code == 200, fits.text
    with db.read_session() as session:
        assert list(session.scalars(select(DagRun.run_id))) == ["fits"]
