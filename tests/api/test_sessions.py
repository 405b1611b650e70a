"""Login sessions on a real server (uvicorn on loopback), SQLite and PostgreSQL: a session ends on the server.

A cookie replayed after logout, after its user was deleted (and a new user took the freed id), after a
password or role change (the real ``headrace users`` CLI), or past its lifetime or idle timeout answers 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from headrace.api.users import create_user, get_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import User, UserSession
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD
from tests.cli.warm import WarmCli


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[str]:
    """URL of a real server (uvicorn in a thread, plain HTTP on 127.0.0.1, a free port) on the test's DB."""
    running = start_in_thread(settings, db, host="127.0.0.1", port=0)
    yield running.url
    running.stop()


def _user(db: Database, name: str, role: str) -> int:
    with db.session() as session:
        return create_user(session, name, PASSWORD, role, now=datetime.now(UTC)).id


def _login(url: str, name: str) -> tuple[httpx.Client, str]:
    """A client logged in as ``name`` through ``POST /api/v1/auth/login``, and its CSRF token."""
    client = httpx.Client(base_url=url, timeout=30)
    resp = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return client, resp.json()["csrf_token"]


def _replay(url: str, cookie: str) -> httpx.Client:
    """A fresh client that sends only ``cookie`` (what an attacker who copied it would send)."""
    return httpx.Client(base_url=url, timeout=30, cookies={"headrace_session": cookie})


def _cli(warm_cli: WarmCli, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``headrace *args`` on the test's database, in a child of the warm headrace (tests/cli/warm.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(HEADRACE_HOME=str(settings.home), HEADRACE__DATABASE__URL=settings.database_url)
    return warm_cli.run(list(args), env, timeout=120)


def test_deleted_users_cookie_is_refused_after_a_new_user_takes_its_place(
    server: str, settings: Settings, db: Database, warm_cli: WarmCli
) -> None:
    viewer_id = _user(db, "vic", "viewer")
    client, csrf = _login(server, "vic")
    cookie = client.cookies["headrace_session"]
    assert client.get("/api/v1/auth/me").json()["username"] == "vic"
    deleted = _cli(warm_cli, settings, "users", "delete", "vic")
    assert deleted.returncode == 0, deleted.stderr
    operator_id = _user(db, "otto", "operator")
    attacker = _replay(server, cookie)
    assert attacker.get("/api/v1/auth/me").status_code == 401  # before: 200, as otto
    assert operator_id != viewer_id  # ids are never handed out again (SQLite: AUTOINCREMENT)
    made = attacker.post("/api/v1/variables", json={"key": "k", "value": "v"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 401
    assert attacker.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_cookie_replayed_after_api_logout_is_refused(server: str, db: Database) -> None:
    _user(db, "ada", "operator")
    client, csrf = _login(server, "ada")
    cookie = client.cookies["headrace_session"]
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    attacker = _replay(server, cookie)
    assert attacker.get("/api/v1/auth/me").status_code == 401
    assert attacker.get("/", follow_redirects=False).status_code == 303  # a page: to the login form
    with db.read_session() as session:
        assert session.scalars(select(UserSession)).all() == []


def test_logging_in_again_ends_the_session_the_cookie_held(server: str, db: Database) -> None:
    _user(db, "lin", "operator")
    client, _ = _login(server, "lin")
    first = client.cookies["headrace_session"]
    again = client.post("/api/v1/auth/login", json={"username": "lin", "password": PASSWORD})
    assert again.status_code == 200 and client.cookies["headrace_session"] != first
    assert _replay(server, first).get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 200
    with db.read_session() as session:
        assert len(session.scalars(select(UserSession)).all()) == 1


def test_cookie_replayed_after_ui_logout_is_refused(server: str, db: Database) -> None:
    _user(db, "uma", "viewer")
    browser = httpx.Client(base_url=server, timeout=30, follow_redirects=False)
    form = browser.get("/login").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    logged_in = browser.post("/login", data={"username": "uma", "password": PASSWORD, "csrf_token": csrf})
    assert logged_in.status_code == 303, logged_in.text
    cookie = browser.cookies["headrace_session"]
    assert browser.get("/").status_code == 200
    page_csrf = browser.get("/api/v1/auth/me").json()["csrf_token"]
    assert browser.post("/logout", data={"csrf_token": page_csrf}).status_code == 303
    attacker = _replay(server, cookie)
    assert attacker.get("/", follow_redirects=False).status_code == 303
    assert attacker.get("/api/v1/auth/me").status_code == 401


def test_logout_everywhere_ends_the_users_other_sessions(server: str, db: Database) -> None:
    _user(db, "eve", "viewer")
    laptop, csrf = _login(server, "eve")
    phone, _ = _login(server, "eve")
    assert phone.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert laptop.post("/api/v1/auth/logout?everywhere=true", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert phone.get("/api/v1/auth/me").status_code == 401


@pytest.mark.parametrize(
    "command",
    [("users", "set-password", "bea", "--password", "a-new-password"), ("users", "set-role", "bea", "viewer")],
    ids=["set-password", "set-role"],
)
def test_password_and_role_change_end_every_session(
    server: str, settings: Settings, db: Database, warm_cli: WarmCli, command: tuple[str, ...]
) -> None:
    _user(db, "bea", "operator")
    first, _ = _login(server, "bea")
    second, _ = _login(server, "bea")
    other_id = _user(db, "carl", "viewer")
    bystander, _ = _login(server, "carl")
    changed = _cli(warm_cli, settings, *command)
    assert changed.returncode == 0, changed.stderr
    assert "2 login session(s) ended" in changed.stdout
    assert first.get("/api/v1/auth/me").status_code == 401
    assert second.get("/api/v1/auth/me").status_code == 401
    assert bystander.get("/api/v1/auth/me").json()["username"] == "carl"  # only that user's sessions end
    with db.read_session() as session:
        assert [s.user_id for s in session.scalars(select(UserSession))] == [other_id]


def test_disabled_users_session_ends(server: str, db: Database) -> None:
    _user(db, "dan", "viewer")
    client, _ = _login(server, "dan")
    with db.session() as session:
        get_user(session, "dan").is_active = False
    assert client.get("/api/v1/auth/me").status_code == 401


@pytest.mark.parametrize("column", ["expires_at", "last_seen_at"])
def test_session_ends_at_its_lifetime_and_after_idling(
    server: str, settings: Settings, db: Database, column: str
) -> None:
    _user(db, "ida", "viewer")
    client, _ = _login(server, "ida")
    assert client.get("/api/v1/auth/me").status_code == 200
    with db.read_session() as session:
        row = session.scalars(select(UserSession)).one()
        assert row.expires_at - row.created_at == timedelta(seconds=settings.get_int("api", "session_lifetime"))
    past = datetime.now(UTC) - timedelta(seconds=settings.get_int("api", "session_idle_timeout") + 1)
    if column == "expires_at":
        past = datetime.now(UTC) - timedelta(seconds=1)
    with db.session() as session:
        session.execute(update(UserSession).values({column: past}))
    assert client.get("/api/v1/auth/me").status_code == 401


def test_requests_keep_a_session_alive(server: str, db: Database) -> None:
    _user(db, "kim", "viewer")
    client, _ = _login(server, "kim")
    stale = datetime.now(UTC) - timedelta(minutes=5)
    with db.session() as session:
        session.execute(update(UserSession).values(last_seen_at=stale))
    assert client.get("/api/v1/auth/me").status_code == 200
    with db.read_session() as session:
        assert session.scalars(select(UserSession)).one().last_seen_at > stale + timedelta(minutes=4)


def test_cookie_holds_no_user_id_and_the_db_no_session_id(server: str, db: Database) -> None:
    uid = _user(db, "sam", "viewer")
    client, _ = _login(server, "sam")
    cookie = client.cookies["headrace_session"]
    with db.read_session() as session:
        row = session.scalars(select(UserSession)).one()
        assert row.user_id == uid and session.get(User, uid) is not None
        id_hash = row.id_hash
    payload = json.loads(base64.b64decode(cookie.split(".")[0] + "=="))  # itsdangerous: base64(JSON).time.sig
    assert set(payload) == {"sid", "csrf"}  # a session id and the CSRF token, no user id
    assert id_hash == hashlib.sha256(payload["sid"].encode()).hexdigest() != payload["sid"]
