"""The HTTP armour on a real server (uvicorn on 127.0.0.1, a free port, real HTTP clients):
request-body limits and the credential check before any body is read, security headers on every answer
(errors and unhandled exceptions included), HSTS behind its setting.

Raw sockets show what an HTTP client cannot: a request that announces a large body and then sends none gets
its answer at once, so the server did not wait for (read) the body.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from headrace.api.app import CONTENT_SECURITY_POLICY
from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.webapp import RunningServer, bind, create_app, start_in_thread
from tests.api.conftest import PASSWORD

RUNS = "/api/v1/dags/demo/dagRuns"
MIB = 1024 * 1024
ANSWER_SECONDS = 20.0
"""A generous deadline for an answer that must come without the announced body ever being sent."""


def _token(db: Database, role: str = "operator") -> str:
    with db.session() as session:
        user = create_user(session, f"{role}-mw", PASSWORD, role, now=datetime.now(UTC))
        token, _ = create_token(session, user, "test", now=datetime.now(UTC))
    return token


def _runs(db: Database) -> int:
    with db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(DagRun)) or 0)


def _conf_body(conf_bytes: int) -> bytes:
    """A trigger body whose conf is about ``conf_bytes`` of JSON."""
    return json.dumps({"conf": {"blob": "x" * conf_bytes}}).encode()


@pytest.fixture
def server(demo_dag: Settings, db: Database) -> Iterator[RunningServer]:
    """The whole server (API and UI) in a thread, DAG ``demo`` parsed."""
    running = start_in_thread(demo_dag, db, host="127.0.0.1", port=0)
    yield running
    running.stop()


def _raw_exchange(url: str, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, CRLF-separated, without the blank line) and ``body``, then read
    one answer (status, headers, body) within :data:`ANSWER_SECONDS`; the connection is then closed."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=ANSWER_SECONDS) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            got = sock.recv(65536)
            assert got, f"connection closed before an answer: {data!r}"
            data += got
        header_block, _, rest = data.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            got = sock.recv(65536)
            assert got, "connection closed in the middle of the answer"
            rest += got
    return int(lines[0].split()[1]), headers, rest[:length]


# --- body limits ---------------------------------------------------------------------------------------------------


def test_a_2_mb_conf_is_413_and_stores_nothing(server: RunningServer, db: Database) -> None:
    token = _token(db)
    body = _conf_body(2 * MIB)
    resp = httpx.post(
        server.url + RUNS,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 413, resp.text
    assert resp.json() == {
        "detail": "request body is larger than 1,048,576 bytes (api.max_request_bytes)",
        "error": "RequestBodyTooLarge",
    }
    assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert _runs(db) == 0


def test_announced_oversized_body_is_refused_without_reading_it(server: RunningServer, db: Database) -> None:
    token = _token(db)
    head = (
        f"POST {RUNS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {50 * MIB}"
    )
    status, headers, body = _raw_exchange(server.url, head)  # no body sent at all
    assert status == 413
    assert json.loads(body)["error"] == "RequestBodyTooLarge"
    assert headers["x-content-type-options"] == "nosniff"


def test_chunked_body_is_counted_while_it_streams_and_stopped_at_the_limit(server: RunningServer, db: Database) -> None:
    token = _token(db)
    head = (
        f"POST {RUNS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked"
    )
    chunk = b"x" * (256 * 1024)
    over_limit = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))  # 1.25 MiB, never terminated
    status, _, body = _raw_exchange(server.url, head, over_limit)
    assert status == 413  # answered although the body has no end: reading stopped at the limit
    assert "api.max_request_bytes" in json.loads(body)["detail"]
    assert _runs(db) == 0


def test_chunked_body_within_the_limit_reaches_the_route(server: RunningServer, db: Database) -> None:
    token = _token(db)

    def pieces() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield b'{"dag_run_id": "chunked", '
        yield b'"conf": {"n": 1}}'

    resp = httpx.post(
        server.url + RUNS,
        content=pieces(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["dag_run_id"] == "chunked" and resp.json()["conf"] == {"n": 1}


def test_anonymous_body_is_401_before_it_is_read(server: RunningServer, db: Database) -> None:
    head = f"POST {RUNS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {50 * MIB}"
    status, headers, body = _raw_exchange(server.url, head)  # the 50 MB never come
    assert status == 401
    assert json.loads(body) == {
        "detail": "not logged in: log in, or send Authorization: Bearer <API token>",
        "error": "AuthenticationError",
    }
    assert headers["www-authenticate"] == 'Bearer realm="headrace"'
    # a credential that is present but wrong is refused by the full check, after a bounded read
    bad = httpx.post(server.url + RUNS, json={"conf": {}}, headers={"Authorization": "Bearer hr_nope"}, timeout=30)
    assert bad.status_code == 401 and bad.json()["error"] == "AuthenticationError"
    assert _runs(db) == 0


def test_login_and_session_posts_still_work(server: RunningServer, db: Database) -> None:
    _token(db)  # makes user operator-mw
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        me = browser.post("/api/v1/auth/login", json={"username": "operator-mw", "password": PASSWORD})
        assert me.status_code == 200, me.text
        made = browser.post(RUNS, json={"dag_run_id": "by-session"}, headers={"X-CSRF-Token": me.json()["csrf_token"]})
        assert made.status_code == 200, made.text
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": me.json()["csrf_token"]}).status_code == 204
    with httpx.Client(base_url=server.url, timeout=30) as browser:  # the UI's login form (a form post)
        page = browser.get("/login")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        done = browser.post(
            "/login", data={"username": "operator-mw", "password": PASSWORD, "csrf_token": csrf, "next": "/"}
        )
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert browser.get("/api/v1/auth/me").json()["username"] == "operator-mw"
    assert _runs(db) == 1


SERVE = textwrap.dedent("""
    import sys
    from headrace.config import load_settings
    from headrace.db.engine import Database
    from headrace.webapp import start_in_thread

    settings = load_settings()
    server = start_in_thread(settings, Database(settings.database_url), host="127.0.0.1", port=0)
    print(server.url, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.stop()
""")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # refused before the database: no SQL
def test_server_rss_stays_flat_over_50_oversized_triggers(demo_dag: Settings, db: Database) -> None:
    """The issue's bound: 50 triggers with a 2 MB conf, each 413, grow the server's RSS by at most 10 MiB."""
    token = _token(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(demo_dag.to_env())
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        body = _conf_body(2 * MIB)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            assert client.post(RUNS, json={"conf": {"warm": "up"}}).status_code == 200  # first-use imports, caches
            before = psutil.Process(proc.pid).memory_info().rss
            statuses = [client.post(RUNS, content=body).status_code for _ in range(50)]
            after = psutil.Process(proc.pid).memory_info().rss
        assert statuses == [413] * 50
        assert after - before <= 10 * MIB, f"server RSS grew by {(after - before) / MIB:.1f} MiB"
        assert _runs(db) == 1
    finally:
        proc.communicate(timeout=30)


# --- security headers on every answer ------------------------------------------------------------------------------


def _armoured(resp: httpx.Response) -> None:
    assert resp.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, (resp.status_code, resp.headers)
    assert resp.headers.get("x-content-type-options") == "nosniff"
    assert resp.headers.get("x-frame-options") == "DENY"
    assert resp.headers.get("referrer-policy") == "same-origin"


def _serve_app(app: FastAPI) -> RunningServer:
    """``app`` (built by ``create_app``, maybe given a test route) on uvicorn in a thread, at its real address."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return RunningServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}", server=server, thread=thread)


def test_every_error_carries_the_security_headers(demo_dag: Settings, db: Database) -> None:
    app = create_app(demo_dag, db)

    @app.get("/api/v1/test-unhandled")
    def unhandled() -> dict[str, Any]:  # a route added by the test: production code stays as it is
        raise RuntimeError("secret detail that must not be shown")

    running = _serve_app(app)
    token = _token(db, "viewer")
    auth = {"Authorization": f"Bearer {token}"}
    try:
        crash = httpx.get(running.url + "/api/v1/test-unhandled", timeout=30)  # uvicorn then closes the connection
        assert crash.status_code == 500
        assert crash.json() == {
            "detail": "internal server error; the server's log has the details",
            "error": "InternalServerError",
        }
        _armoured(crash)
        with httpx.Client(base_url=running.url, timeout=30) as client:
            answers = {
                404: client.get("/api/v1/no-such-thing", headers=auth),
                405: client.put("/health"),
                422: client.get("/api/v1/dags?limit=0", headers=auth),
                413: client.post(RUNS, content=_conf_body(2 * MIB), headers=auth),
                401: client.post(RUNS, json={}),
                503: client.get("/health"),  # no scheduler runs: unhealthy
            }
            for status, resp in answers.items():
                assert resp.status_code == status, (status, resp.text)
                _armoured(resp)
                assert "strict-transport-security" not in resp.headers  # api.hsts_max_age is 0 by default
    finally:
        running.stop()


def test_hsts_only_when_configured_and_over_https(demo_dag: Settings, db: Database) -> None:
    year = 365 * 24 * 3600
    running = start_in_thread(demo_dag.with_overrides({"api": {"hsts_max_age": year}}), db, host="127.0.0.1", port=0)
    try:
        plain = httpx.get(running.url + "/health", timeout=30)
        assert "strict-transport-security" not in plain.headers  # plain HTTP: browsers ignore it anyway
        # TLS ended by a proxy on this host (uvicorn trusts X-Forwarded-Proto from 127.0.0.1)
        proxied = httpx.get(running.url + "/api/v1/nope", headers={"X-Forwarded-Proto": "https"}, timeout=30)
        assert proxied.headers["strict-transport-security"] == f"max-age={year}"
    finally:
        running.stop()
    behind_https = demo_dag.with_overrides({"api": {"hsts_max_age": 600, "base_url": "https://headrace.example.com"}})
    running = _serve_app(create_app(behind_https, db))  # start_in_thread's url would be base_url
    try:
        resp = httpx.get(running.url + "/health", timeout=30)
        assert resp.headers["strict-transport-security"] == "max-age=600"
    finally:
        running.stop()
