"""``/api/v1/variables``: CRUD, encrypted at rest, sensitive values masked."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from headrace.db.engine import Database
from tests.api.conftest import ClientAs


def _stored(db: Database, key: str) -> str:
    with db.session() as session:
        return str(session.execute(text("SELECT value FROM variable WHERE key = :k"), {"k": key}).scalar_one())


def test_crud_encrypted_and_masked(client_as: ClientAs, anon: TestClient, db: Database) -> None:
    viewer, operator = client_as("viewer"), client_as("operator")
    made = operator.post("/api/v1/variables", json={"key": "region", "value": "eu-west-1", "description": "where"})
    assert made.status_code == 200, made.text
    assert made.json() == {"key": "region", "value": "eu-west-1", "description": "where"}
    secret = operator.post("/api/v1/variables", json={"key": "api_token", "value": "tok-123456"}).json()
    assert secret["value"] == "tok-123456"  # the operator who set it sees it

    for key, plaintext in (("region", "eu-west-1"), ("api_token", "tok-123456")):
        stored = _stored(db, key)
        assert plaintext not in stored and stored.startswith("gAAAA")  # a Fernet token, not the value

    listed = viewer.get("/api/v1/variables").json()
    assert listed["total_entries"] == 2
    assert listed["variables"] == [
        {"key": "api_token", "value": "***", "description": None},
        {"key": "region", "value": "eu-west-1", "description": "where"},
    ]
    assert operator.get("/api/v1/variables").json()["variables"][0]["value"] == "***"  # lists: masked for all
    assert viewer.get("/api/v1/variables/api_token").json()["value"] == "***"
    assert operator.get("/api/v1/variables/api_token").json()["value"] == "tok-123456"
    assert viewer.get("/api/v1/variables/region").json()["value"] == "eu-west-1"

    dup = operator.post("/api/v1/variables", json={"key": "region", "value": "x"})
    assert dup.status_code == 409 and dup.json()["error"] == "Conflict"
    changed = operator.patch("/api/v1/variables/region", json={"value": "us-east-2"}).json()
    assert changed == {"key": "region", "value": "us-east-2", "description": "where"}
    assert "us-east-2" not in _stored(db, "region")
    assert operator.patch("/api/v1/variables/region", json={"description": None}).json()["description"] is None
    assert viewer.get("/api/v1/variables", params={"limit": 1, "offset": 1}).json()["variables"][0]["key"] == "region"

    assert viewer.post("/api/v1/variables", json={"key": "k", "value": "v"}).status_code == 403
    assert viewer.patch("/api/v1/variables/region", json={"value": "v"}).status_code == 403
    assert viewer.delete("/api/v1/variables/region").status_code == 403
    assert anon.get("/api/v1/variables").status_code == 401
    assert anon.get("/api/v1/variables/region").status_code == 401
    for bad in (
        {"key": "", "value": "v"},
        {"key": "k"},
        {"key": "k" * 251, "value": "v"},
        {"key": "a\x00", "value": "v"},
    ):
        assert operator.post("/api/v1/variables", json=bad).status_code == 422, bad

    assert operator.delete("/api/v1/variables/region").status_code == 204
    for r in (
        viewer.get("/api/v1/variables/region"),
        operator.patch("/api/v1/variables/region", json={"value": "v"}),
        operator.delete("/api/v1/variables/region"),
    ):
        assert r.status_code == 404 and r.json() == {"detail": "variable 'region' not found", "error": "NotFound"}
