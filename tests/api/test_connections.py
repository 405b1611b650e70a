"""``/api/v1/connections``: CRUD, password and extra encrypted at rest, never shown in clear."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from headrace.db.engine import Database
from tests.api.conftest import ClientAs

WAREHOUSE = {
    "conn_id": "warehouse",
    "conn_type": "postgres",
    "description": "the DWH",
    "host": "db.example",
    "port": 5432,
    "login": "etl",
    "schema": "analytics",
    "password": "hunter2-hunter2",
    "extra": {"sslmode": "require", "api_key": "k-987654", "nested": {"client_secret": "cs-1234"}},
}


def test_crud_encrypted_and_masked(client_as: ClientAs, anon: TestClient, db: Database) -> None:
    viewer, operator = client_as("viewer"), client_as("operator")
    made = operator.post("/api/v1/connections", json=WAREHOUSE)
    assert made.status_code == 200, made.text
    shown = made.json()
    assert shown == {
        **WAREHOUSE,
        "password": "***",
        "extra": {"sslmode": "require", "api_key": "***", "nested": {"client_secret": "***"}},
    }
    with db.session() as session:
        password, extra = session.execute(text("SELECT password, extra FROM connection")).one()
    for plaintext in ("hunter2-hunter2", "k-987654", "cs-1234", "sslmode"):
        assert plaintext not in password and plaintext not in extra
    assert viewer.get("/api/v1/connections/warehouse").json() == shown
    assert operator.get("/api/v1/connections/warehouse").json()["password"] == "***"  # never returned
    listed = viewer.get("/api/v1/connections").json()
    assert listed == {"connections": [shown], "total_entries": 1}

    dup = operator.post("/api/v1/connections", json={"conn_id": "warehouse", "conn_type": "http"})
    assert dup.status_code == 409 and dup.json()["error"] == "Conflict"
    changed = operator.patch("/api/v1/connections/warehouse", json={"host": "db2.example", "port": 6543}).json()
    assert changed["host"] == "db2.example" and changed["port"] == 6543 and changed["password"] == "***"
    assert changed["login"] == "etl"  # fields not given stay
    cleared = operator.patch("/api/v1/connections/warehouse", json={"password": None, "extra": None}).json()
    assert cleared["password"] is None and cleared["extra"] is None
    bare = operator.post("/api/v1/connections", json={"conn_id": "bare", "conn_type": "http"}).json()
    assert bare["password"] is None and bare["extra"] is None and bare["host"] is None

    for bad in (
        {"conn_id": "x"},
        {"conn_id": "x", "conn_type": "http", "port": 70000},
        {"conn_id": "x", "conn_type": "http", "extra": [1]},
        {"conn_id": "", "conn_type": "http"},
        {"conn_id": "x", "conn_type": "http", "host": "h\x00"},
    ):
        assert operator.post("/api/v1/connections", json=bad).status_code == 422, bad
    assert viewer.post("/api/v1/connections", json={"conn_id": "v", "conn_type": "http"}).status_code == 403
    assert viewer.patch("/api/v1/connections/bare", json={"host": "h"}).status_code == 403
    assert viewer.delete("/api/v1/connections/bare").status_code == 403
    assert anon.get("/api/v1/connections").status_code == 401
    assert anon.get("/api/v1/connections/bare").status_code == 401

    assert operator.delete("/api/v1/connections/bare").status_code == 204
    for r in (
        viewer.get("/api/v1/connections/bare"),
        operator.patch("/api/v1/connections/bare", json={"host": "h"}),
        operator.delete("/api/v1/connections/bare"),
    ):
        assert r.status_code == 404 and r.json() == {"detail": "connection 'bare' not found", "error": "NotFound"}
