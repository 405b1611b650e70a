"""Failed logins are throttled on a real server (uvicorn on loopback): per username and per client address.

The server trusts 127.0.0.1 as a proxy (uvicorn's default ``--forwarded-allow-ips``), so ``X-Forwarded-For``
stands in for callers on other addresses.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD
from tests.waiting import wait_until

# The counts live in the server's memory (headrace.api.throttle) and the password checks are argon2's: no
# SQL of its own here (logins read the user as every login does, on both databases in test_auth.py).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

LIMIT = 10
"""api.login_max_failures's default."""


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[str]:
    """URL of a real server on the test's DB, with an admin ``root`` whose password is ``PASSWORD``."""
    with db.session() as session:
        create_user(session, "root", PASSWORD, "admin", now=datetime.now(UTC))
    running = start_in_thread(settings, db, host="127.0.0.1", port=0)
    yield running.url
    running.stop()


def _login(url: str, password: str, *, username: str = "root", address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    body = {"username": username, "password": password}
    return httpx.post(f"{url}/api/v1/auth/login", json=body, headers=headers, timeout=30)


def _basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def test_twenty_wrong_passwords_in_a_row_get_429_and_then_the_right_one_too(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="headrace.api.auth")
    answers = [_login(server, f"wrong-password-{i}") for i in range(20)]
    assert [r.status_code for r in answers] == [401] * LIMIT + [429] * (20 - LIMIT)
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 300
    assert refused.json()["error"] == "LoginThrottled"
    assert "try again in" in refused.json()["detail"]
    assert _login(server, PASSWORD).status_code == 429  # no password is checked while throttled
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed login (session) for user 'root' from 127.0.0.1" in m for m in messages) == LIMIT
    assert any("login throttled" in m for m in messages)
    assert PASSWORD not in caplog.text


def test_failures_count_per_username_across_addresses(server: str) -> None:
    spread = [_login(server, "guess", address=f"10.0.0.{i}") for i in range(LIMIT + 1)]
    assert [r.status_code for r in spread] == [401] * LIMIT + [429]
    assert _login(server, PASSWORD, address="10.9.9.9").status_code == 429  # this username, from anywhere


def test_failures_count_per_address_across_usernames(server: str, db: Database) -> None:
    with db.session() as session:
        create_user(session, "other", PASSWORD, "viewer", now=datetime.now(UTC))
    sprayed = [_login(server, "guess", username=f"user{i}", address="10.1.1.1") for i in range(LIMIT + 1)]
    assert [r.status_code for r in sprayed] == [401] * LIMIT + [429]
    assert _login(server, PASSWORD, username="other", address="10.1.1.1").status_code == 429
    # another address is not blocked by this one's failures: the real user logs in from elsewhere
    assert _login(server, PASSWORD, username="other", address="10.2.2.2").status_code == 200


def test_basic_auth_is_throttled_like_the_login(server: str) -> None:
    me = f"{server}/api/v1/auth/me"
    codes = [httpx.get(me, headers=_basic("root", f"nope-{i}"), timeout=30).status_code for i in range(LIMIT + 2)]
    assert codes == [401] * LIMIT + [429, 429]
    right = httpx.get(me, headers=_basic("root", PASSWORD), timeout=30)
    assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1


def test_wrong_tokens_are_throttled_per_address(server: str, db: Database) -> None:
    with db.session() as session:
        user = create_user(session, "bot", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "ci", now=datetime.now(UTC))
    me = f"{server}/api/v1/auth/me"

    def get(tok: str, address: str) -> int:
        headers = {"Authorization": f"Bearer {tok}", "X-Forwarded-For": address}
        return httpx.get(me, headers=headers, timeout=30).status_code

    assert [get(f"hr_guess{i}", "10.3.3.3") for i in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert get(token, "10.3.3.3") == 429
    assert get(token, "10.4.4.4") == 200


def test_a_success_clears_the_usernames_failures(server: str) -> None:
    assert [_login(server, "wrong-password").status_code for _ in range(LIMIT - 1)] == [401] * (LIMIT - 1)
    assert _login(server, PASSWORD, address="10.5.5.5").status_code == 200
    assert _login(server, "wrong-password", address="10.6.6.6").status_code == 401  # counting starts again


def test_failures_are_counted_in_the_metric(server: str, db: Database) -> None:
    for i in range(LIMIT + 2):
        _login(server, f"wrong-{i}")
    bad_token = {"Authorization": "Bearer hr_nope", "X-Forwarded-For": "10.8.8.8"}  # 127.0.0.1 is throttled by now
    assert httpx.get(f"{server}/api/v1/auth/me", headers=bad_token, timeout=30).status_code == 401
    with db.session() as session:
        user = create_user(session, "prom", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "scrape", now=datetime.now(UTC))
    scrape = httpx.get(
        f"{server}/metrics", headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "10.7.7.7"}, timeout=30
    )
    assert scrape.status_code == 200
    lines = scrape.text.splitlines()
    assert 'headrace_login_failures_total{reason="wrong_credentials",via="session"} 10.0' in lines
    assert 'headrace_login_failures_total{reason="throttled",via="session"} 2.0' in lines
    assert 'headrace_login_failures_total{reason="wrong_credentials",via="token"} 1.0' in lines


def test_password_checks_do_not_hold_up_the_server(server: str, db: Database) -> None:
    """30 concurrent wrong logins (each from its own address, so none is throttled) leave /health answering.

    Before, each password hash ran on the event loop: a /health sent once the logins were in waited for all of
    them. Ordering, not timing: /health must come back while most logins are still being checked.
    """
    flood = 30
    with db.session() as session:
        for i in range(flood):
            create_user(session, f"flood{i}", PASSWORD, "viewer", now=datetime.now(UTC))
    done: list[float] = []
    lock = threading.Lock()

    def wrong(i: int) -> None:
        r = _login(server, "wrong-password", username=f"flood{i}", address=f"10.20.0.{i + 1}")
        assert r.status_code == 401, r.text
        with lock:
            done.append(time.monotonic())

    threads = [threading.Thread(target=wrong, args=(i,)) for i in range(flood)]
    for t in threads:
        t.start()
    wait_until(lambda: done, 60, "the first wrong login to be answered")  # every request is in by then
    health = httpx.get(f"{server}/health", timeout=60)
    answered = time.monotonic()
    for t in threads:
        t.join(60)
    assert health.status_code in (200, 503) and "status" in health.text  # 503: no scheduler runs in this test
    still_checking = sum(1 for at in done if at > answered)
    assert len(done) == flood and still_checking >= flood // 2, (still_checking, flood)


def test_wrong_logins_sent_at_once_get_no_more_guesses_than_the_limit(server: str, settings: Settings) -> None:
    """All sent together, from addresses of their own: each passed the first check before any failure was counted."""
    sent = 40
    codes: list[int] = []
    lock = threading.Lock()

    def guess(i: int) -> None:
        code = _login(server, f"guess-{i}", address=f"10.30.0.{i + 1}").status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(sent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    slack = settings.get_int("api", "password_hash_concurrency") - 1
    assert len(codes) == sent and set(codes) <= {401, 429}
    assert LIMIT <= codes.count(401) <= LIMIT + slack, sorted(codes)
