"""Login, logout and the page helper, in process (TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from headrace.api.users import create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.webapp import create_app

PASSWORD = "correct horse battery"


def _client(settings: Settings, db: Database, role: str = "operator") -> TestClient:
    with db.session() as session:
        create_user(session, "alice", PASSWORD, role, now=datetime.now(UTC))
    return TestClient(create_app(settings, db), follow_redirects=False)


def _form_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_pages_redirect_to_login_and_back(settings: Settings, db: Database) -> None:
    client = _client(settings, db)
    resp = client.get("/")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?next=%2F"
    form = client.get("/login", params={"next": "/dags/x/grid?run_id=a"})
    assert form.status_code == 200 and 'name="password"' in form.text
    token = _form_csrf(form.text)
    done = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": "/dags/x/grid?run_id=a"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/dags/x/grid?run_id=a"
    me = client.get("/api/v1/auth/me").json()
    assert me["username"] == "alice" and me["via"] == "session"


def test_login_refuses_wrong_password_missing_csrf_and_foreign_next(settings: Settings, db: Database) -> None:
    client = _client(settings, db)
    token = _form_csrf(client.get("/login").text)
    wrong = client.post("/login", data={"username": "alice", "password": "nope-nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong username or password" in wrong.text
    no_csrf = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    token = _form_csrf(no_csrf.text)
    ok = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"


def test_logout_needs_csrf_and_ends_session(settings: Settings, db: Database) -> None:
    client = _client(settings, db, role="viewer")
    token = _form_csrf(client.get("/login").text)
    client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert client.post("/logout").status_code == 403
    token = client.get("/api/v1/auth/me").json()["csrf_token"]
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/api/v1/auth/me").status_code == 401


def test_static_files_are_served(settings: Settings, db: Database) -> None:
    client = _client(settings, db)
    css = client.get("/static/ui.css")
    assert css.status_code == 200 and ".state-success" in css.text
