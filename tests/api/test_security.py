"""Security properties over the whole application: every route's login and role, CSRF on every unsafe route,
no secrets in error bodies, logs read only under the log folder, response headers and compression.

The route walks read ``app.routes`` (so a route added later is covered without editing this file) and call
each with sample path parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.api.app import CONTENT_SECURITY_POLICY
from headrace.api.users import create_token, create_user
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD, ClientAs, FinishedRun

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/favicon.ico"),
}
"""What answers without a login: health, the site icon, logging in, and logging out (which ends nothing when
nobody is in)."""
OWN_ACCOUNT = {("POST", "/api/v1/auth/tokens"), ("DELETE", "/api/v1/auth/tokens/{token_id}")}
"""Changes a viewer may make: to its own API tokens."""
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
INT_PARAMS = {"try_number", "token_id", "import_error_id", "map_index"}


def _routes(app: FastAPI) -> Iterator[tuple[str, str, str]]:
    """(method, route path, a concrete URL) for every HTTP route of the app (static files left out)."""
    for route in iter_route_contexts(app.routes):
        if not route.methods:  # the /static mount
            continue
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: "1" if m.group(1) in INT_PARAMS else "x", route.path)
        for method in sorted(route.methods - {"HEAD"}):
            yield method, route.path, url


def test_every_route_but_health_and_login_needs_a_login(app: FastAPI, anon: TestClient) -> None:
    seen = 0
    for method, path, url in _routes(app):
        if (method, path) in PUBLIC:
            continue
        resp = anon.request(method, url, follow_redirects=False)
        seen += 1
        if resp.status_code == 303:  # a UI page: to the login form
            assert resp.headers["location"].startswith("/login?next="), (method, path)
        else:
            assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
            assert resp.json()["error"] == "AuthenticationError", (method, path)
    assert seen > 50  # the walk found the routes (REST, /ui/data, pages, /metrics, the OpenAPI document)
    assert anon.get("/api/v1/openapi.json").status_code == 401


def test_viewer_is_refused_every_change(app: FastAPI, client_as: ClientAs) -> None:
    viewer = client_as("viewer")
    unsafe = [(m, p, u) for m, p, u in _routes(app) if m in UNSAFE and (m, p) not in PUBLIC | OWN_ACCOUNT]
    assert len(unsafe) >= 15
    for method, path, url in unsafe:
        resp = viewer.request(method, url, json={})
        assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
        assert resp.json()["error"] == "PermissionDenied", (method, path)


def test_session_needs_the_csrf_token_on_every_unsafe_route(app: FastAPI, db: Database) -> None:
    with db.session() as session:
        create_user(session, "root", PASSWORD, "admin", now=datetime.now(UTC))
    with TestClient(app, follow_redirects=False) as browser:
        assert browser.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD}).status_code == 200
        unsafe = [
            (m, p, u)
            for m, p, u in _routes(app)
            if m in UNSAFE and (m, p) not in {("POST", "/login"), ("POST", "/api/v1/auth/login")}
        ]
        assert len(unsafe) >= 18
        for method, path, url in unsafe:
            for headers in ({}, {"X-CSRF-Token": "forged"}):
                resp = browser.request(method, url, json={}, headers=headers)
                assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
                assert "CSRF" in resp.json()["detail"], (method, path)
            form = browser.request(method, url, data={"csrf_token": "forged"})  # what a cross-site form sends
            assert form.status_code in (403, 405), (method, path, form.status_code, form.text)
        # Logging out through the API without the token was refused too: still logged in.
        me = browser.get("/api/v1/auth/me")
        assert me.status_code == 200
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": me.json()["csrf_token"]}).status_code == 204
        assert browser.get("/api/v1/auth/me").status_code == 401


def test_session_cookie_is_httponly_and_samesite_lax(anon: TestClient, db: Database) -> None:
    with db.session() as session:
        create_user(session, "cookie", PASSWORD, "viewer", now=datetime.now(UTC))
    resp = anon.post("/api/v1/auth/login", json={"username": "cookie", "password": PASSWORD})
    cookie = resp.headers["set-cookie"].lower()
    assert cookie.startswith("headrace_session=") and "httponly" in cookie and "samesite=lax" in cookie


def test_login_accepts_only_json_so_no_cross_site_form_can_log_a_browser_in(anon: TestClient, db: Database) -> None:
    with db.session() as session:
        create_user(session, "mallory", PASSWORD, "viewer", now=datetime.now(UTC))
    body = f'{{"username": "mallory", "password": "{PASSWORD}"}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        resp = anon.post("/api/v1/auth/login", content=body, headers={"Content-Type": content_type})
        assert resp.status_code == 422 and "set-cookie" not in resp.headers, content_type


def test_error_bodies_do_not_echo_secrets(api: TestClient, anon: TestClient) -> None:
    long_password = "hunter2-" * 200  # over the 1024 characters allowed
    resp = anon.post("/api/v1/auth/login", json={"username": "x", "password": long_password})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "password"]
    assert "hunter2" not in resp.text
    text_body = anon.post(
        "/api/v1/auth/login",
        content='{"username": "x", "password": "hunter2-pw"}',
        headers={"Content-Type": "text/plain"},
    )
    assert text_body.status_code == 422 and "hunter2" not in text_body.text
    conn = api.post(
        "/api/v1/connections",
        json={"conn_id": "pg", "conn_type": "postgres", "password": "hunter2-conn", "port": "not a port"},
    )
    assert conn.status_code == 422 and "hunter2" not in conn.text
    made = api.post("/api/v1/connections", json={"conn_id": "pg", "conn_type": "postgres", "password": "hunter2-conn"})
    assert made.status_code == 200 and made.json()["password"] == "***"
    again = api.post("/api/v1/connections", json={"conn_id": "pg", "conn_type": "postgres", "password": "hunter2-conn"})
    assert again.status_code == 409 and "hunter2" not in again.text


def test_log_is_read_only_under_the_log_folder(
    api: TestClient, db: Database, finished_run: FinishedRun, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("TOP-SECRET not a log\n")
    base = Path(finished_run.settings.base_log_folder)
    url = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances/extract/logs/1"
    real = api.get(url).json()["content"]
    assert "extracting with" in real
    for recorded in (str(outside), str(base / ".." / ".." / outside.relative_to(tmp_path.parent))):
        with db.session() as session:
            row = session.scalars(select(TaskTry).where(TaskTry.task_id == "extract", TaskTry.try_number == 1)).one()
            row.log_path = recorded  # a tampered or stale row
        for resp in (api.get(url), api.get(url, headers={"Accept": "text/plain"})):
            assert resp.status_code == 200
            assert "TOP-SECRET" not in resp.text and "extracting with" in resp.text, recorded
    assert api.get(url.replace(finished_run.run_id, "..%2F..%2F..")).status_code == 404
    assert api.get(url[:-1] + "..%2F1").status_code in (404, 422)


def test_security_headers_and_gzip_for_large_json(api: TestClient) -> None:
    small = api.get("/api/v1/auth/me", headers={"Accept-Encoding": "gzip"})
    assert small.headers["x-content-type-options"] == "nosniff"
    assert small.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and small.headers["x-frame-options"] == "DENY"
    assert "content-encoding" not in small.headers  # below the minimum size
    big = api.get("/api/v1/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip" and big.json()["openapi"].startswith("3.")
    raw = api.get("/api/v1/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and len(raw.content) > 10_000


def test_followed_log_stream_is_not_compressed_over_real_http(db: Database, finished_run: FinishedRun) -> None:
    with db.session() as session:
        user = create_user(session, "streamer", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
    server = start_in_thread(finished_run.settings, db, host="127.0.0.1", port=0)
    try:
        url = f"{server.url}/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances/extract/logs/1"
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/plain", "Accept-Encoding": "gzip"}
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            assert "content-encoding" not in response.headers  # gzip would hold chunks back
            body = response.read()
        assert b"extracting with" in body
        json_url = url + "?stream=false"
        chunk = httpx.get(json_url, headers={**headers, "Accept": "application/json"}, timeout=60)
        assert chunk.json()["content"]  # JSON answers may be compressed; httpx undoes it
    finally:
        server.stop()


def test_try_errors_mask_stored_secrets(api: TestClient, client_as: ClientAs, finished_run: FinishedRun) -> None:
    viewer = client_as("viewer")
    tries_url = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances/explode/tries"
    gantt_url = f"/ui/data/dags/demo/runs/{finished_run.run_id}/gantt"
    error = viewer.get(tries_url).json()["tries"][0]["error"]
    assert "boom" in error  # the task raised RuntimeError("boom")
    # the task never read it, so its own masker did not know it: the API masks every stored secret
    assert api.post("/api/v1/variables", json={"key": "api_token", "value": "boom"}).status_code == 200
    for text in (
        viewer.get(tries_url).json()["tries"][0]["error"],
        viewer.get(f"{tries_url}/1").json()["error"],
        next(b["error"] for b in viewer.get(gantt_url).json()["tries"] if b["task_id"] == "explode"),
    ):
        assert "boom" not in text and "***" in text
