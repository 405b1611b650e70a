"""``/api/v1/pools``: CRUD, slot usage, default_pool protected."""

from __future__ import annotations

from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.states import TaskInstanceState as TI
from tests.api.conftest import ClientAs
from tests.scheduler.conftest import move_ti, tis


def test_crud(client_as: ClientAs, anon: TestClient) -> None:
    viewer, operator = client_as("viewer"), client_as("operator")
    listed = viewer.get("/api/v1/pools").json()
    assert listed["total_entries"] == 1 and listed["pools"][0]["name"] == "default_pool"

    made = operator.post("/api/v1/pools", json={"name": "gpu", "slots": 2, "description": "the GPUs"})
    assert made.status_code == 200, made.text
    assert made.json() == {
        "name": "gpu",
        "slots": 2,
        "description": "the GPUs",
        "occupied_slots": 0,
        "running_slots": 0,
        "queued_slots": 0,
        "open_slots": 2,
    }
    dup = operator.post("/api/v1/pools", json={"name": "gpu", "slots": 1})
    assert dup.status_code == 409 and dup.json()["error"] == "Conflict"
    assert viewer.get("/api/v1/pools/gpu").json()["slots"] == 2
    changed = operator.patch("/api/v1/pools/gpu", json={"slots": 5}).json()
    assert changed["slots"] == 5 and changed["description"] == "the GPUs" and changed["open_slots"] == 5
    assert operator.patch("/api/v1/pools/gpu", json={"description": None}).json()["description"] is None

    page = viewer.get("/api/v1/pools", params={"limit": 1, "offset": 1}).json()
    assert [p["name"] for p in page["pools"]] == ["gpu"] and page["total_entries"] == 2

    for bad in (
        {"name": "x", "slots": -2},
        {"name": "", "slots": 1},
        {"name": "x", "slots": 2**31},
        {"name": "x"},
        {"name": "x" * 257, "slots": 1},
        {"name": "x", "slots": 1, "colour": "red"},
    ):
        assert operator.post("/api/v1/pools", json=bad).status_code == 422, bad
    assert operator.post("/api/v1/pools", json={"name": "a\x00b", "slots": 1}).status_code == 422
    unlimited = operator.post("/api/v1/pools", json={"name": "wide", "slots": -1})  # Airflow's unlimited
    assert unlimited.status_code == 200 and unlimited.json()["open_slots"] == -1, unlimited.text
    assert operator.patch("/api/v1/pools/gpu", json={"slots": -1}).json()["slots"] == -1
    assert operator.patch("/api/v1/pools/gpu", json={"slots": 5}).status_code == 200
    assert operator.delete("/api/v1/pools/wide").status_code == 204

    assert viewer.post("/api/v1/pools", json={"name": "v", "slots": 1}).status_code == 403
    assert viewer.patch("/api/v1/pools/gpu", json={"slots": 1}).status_code == 403
    assert viewer.delete("/api/v1/pools/gpu").status_code == 403
    assert anon.get("/api/v1/pools").status_code == 401 and anon.get("/api/v1/pools/gpu").status_code == 401

    refused = operator.delete("/api/v1/pools/default_pool")
    assert refused.status_code == 400 and refused.json()["error"] == "InvalidRequest"
    assert operator.delete("/api/v1/pools/gpu").status_code == 204
    for r in (
        viewer.get("/api/v1/pools/gpu"),
        operator.patch("/api/v1/pools/gpu", json={"slots": 1}),
        operator.delete("/api/v1/pools/gpu"),
    ):
        assert r.status_code == 404 and r.json() == {"detail": "pool 'gpu' not found", "error": "NotFound"}


def test_slot_usage(api: TestClient, db: Database, demo_dag: Settings) -> None:
    assert api.post("/api/v1/dags/demo/dagRuns", json={"dag_run_id": "r"}).status_code == 200
    run = tis(db, "r")
    move_ti(db, run["extract"].id, TI.RUNNING)
    move_ti(db, run["echo"].id, TI.QUEUED)
    pool = api.get("/api/v1/pools/default_pool").json()
    assert pool["running_slots"] == 1 and pool["queued_slots"] == 1 and pool["occupied_slots"] == 2
    assert pool["open_slots"] == pool["slots"] - 2
    assert api.patch("/api/v1/pools/default_pool", json={"slots": 1}).json()["open_slots"] == -1
