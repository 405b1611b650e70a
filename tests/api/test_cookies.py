"""The session cookie's flags on a real server: ``Secure`` per ``api.secure_cookies``, HttpOnly, SameSite=Lax."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
import pytest

from headrace.api.users import create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD


@pytest.mark.parametrize(
    ("overrides", "proto", "secure"),
    [
        ({}, None, False),  # auto, plain HTTP on loopback (standalone): the browser must get the cookie back
        ({}, "https", True),  # auto behind a trusted TLS proxy
        ({"secure_cookies": "true"}, None, True),
        ({"secure_cookies": "false"}, "https", False),
        ({"base_url": "https://headrace.example.com"}, None, True),
    ],
    ids=["auto-http", "auto-proxy-https", "true", "false", "auto-https-base-url"],
)
def test_secure_flag_follows_api_secure_cookies(
    settings: Settings, db: Database, overrides: dict[str, str], proto: str | None, secure: bool
) -> None:
    with db.session() as session:
        create_user(session, "cookie", PASSWORD, "viewer", now=datetime.now(UTC))
    with socket.socket() as probe:  # a free port, so the URL is known even when api.base_url names another
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_in_thread(settings.with_overrides({"api": overrides}), db, host="127.0.0.1", port=port)
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        resp = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "cookie", "password": PASSWORD}, headers=headers, timeout=30
        )
        assert resp.status_code == 200, resp.text
        flags = [f.strip().lower() for f in resp.headers["set-cookie"].split(";")]
        assert flags[0].startswith("headrace_session=")
        assert "httponly" in flags and "samesite=lax" in flags
        assert ("secure" in flags) is secure
        assert f"max-age={settings.get_int('api', 'session_lifetime')}" in flags
    finally:
        server.stop()
