"""Logins, sessions with CSRF, API tokens, Basic auth and roles."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from headrace.api.users import create_user, role_allows
from headrace.db.engine import Database
from tests.api.conftest import PASSWORD, ClientAs


def _user(db: Database, name: str, role: str) -> None:
    with db.session() as session:
        create_user(session, name, PASSWORD, role, now=datetime.now(UTC))


def test_everything_but_health_needs_a_login(anon: TestClient) -> None:
    r = anon.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.json()["error"] == "AuthenticationError"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert anon.get("/health").status_code in (200, 503)  # no scheduler in this test: 503, but answered


def test_session_login_needs_csrf_for_changes(anon: TestClient, db: Database) -> None:
    _user(db, "ada", "operator")
    assert anon.post("/api/v1/auth/login", json={"username": "ada", "password": "wrong password"}).status_code == 401
    r = anon.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    assert r.json()["role"] == "operator"
    me = anon.get("/api/v1/auth/me").json()
    assert me == {"username": "ada", "role": "operator", "via": "session", "csrf_token": csrf}
    # A change without the token is refused (403), with it accepted.
    refused = anon.post("/api/v1/auth/tokens", json={"name": "x"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert anon.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    made = anon.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    assert made.json()["token"].startswith("hr_")
    assert anon.post("/api/v1/auth/logout").status_code == 403  # another site cannot log the user out
    assert anon.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert anon.get("/api/v1/auth/me").status_code == 401


def test_tokens_authenticate_and_can_be_revoked(anon: TestClient, api: TestClient) -> None:
    made = api.post("/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 3}).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert anon.get("/api/v1/auth/me", headers=headers).json()["via"] == "token"
    listed = api.get("/api/v1/auth/tokens").json()
    assert made["id"] in [t["id"] for t in listed]
    assert "token" not in listed[0]
    assert api.delete(f"/api/v1/auth/tokens/{made['id']}").status_code == 204
    assert anon.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert anon.get("/api/v1/auth/me", headers={"Authorization": "Bearer hr_nope"}).status_code == 401


def test_basic_auth(anon: TestClient, db: Database) -> None:
    _user(db, "bob", "viewer")
    good = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    bad = base64.b64encode(b"bob:nope-nope").decode()
    assert anon.get("/api/v1/auth/me", headers={"Authorization": f"Basic {good}"}).json()["role"] == "viewer"
    assert anon.get("/api/v1/auth/me", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert anon.get("/api/v1/auth/me", headers={"Authorization": "Basic %%%"}).status_code == 401
    nul = base64.b64encode(b"b\x00b:whatever-pw").decode()  # PostgreSQL refuses NUL in text: still a 401
    assert anon.get("/api/v1/auth/me", headers={"Authorization": f"Basic {nul}"}).status_code == 401
    assert anon.post("/api/v1/auth/login", json={"username": "b\u0000b", "password": "x"}).status_code == 401


def test_roles_are_ordered(client_as: ClientAs) -> None:
    assert role_allows("admin", "operator") and role_allows("operator", "viewer")
    assert not role_allows("viewer", "operator") and not role_allows("operator", "admin")
    assert client_as("viewer").get("/api/v1/auth/me").json()["role"] == "viewer"
