"""UI pages in process (TestClient, SQLite and PostgreSQL): markup from DAG authors and triggering users is
escaped, an unknown DAG is an HTML 404 page for a logged-in browser and reveals nothing to anyone else, and
pages carry the security headers but are not compressed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi.testclient import TestClient

from headrace.api.app import CONTENT_SECURITY_POLICY
from headrace.api.users import create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.webapp import create_app
from tests.integration.helpers import write_dag

PASSWORD = "correct horse battery"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(1)</script>"
TEXTAREA = "</textarea><script>alert(2)</script>"

HOSTILE_DAG = f"""
from datetime import datetime

from headrace import DAG, Param
from headrace.operators import BashOperator

with DAG(dag_id="hostile", schedule=None, start_date=datetime(2026, 1, 1),
         description={IMG + SCRIPT!r},
         params={{"greeting": {SCRIPT!r}, {IMG!r}: "x", "blob": {{"k": {TEXTAREA!r}}},
                 "pick": Param("a", enum=["a", {SCRIPT!r}], title={IMG!r}, description={SCRIPT!r},
                               values_display={{"a": {TEXTAREA!r}}})}}) as dag:
    BashOperator(task_id="say", bash_command="echo hi")
"""


def _browser(settings: Settings, db: Database, role: str = "viewer") -> TestClient:
    """A client logged in through the login form (session cookie), asking for HTML like a browser."""
    with db.session() as session:
        create_user(session, "alice", PASSWORD, role, now=datetime.now(UTC))
    client = TestClient(create_app(settings, db), follow_redirects=False, headers={"Accept": "text/html"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    done = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token.group(1)})
    assert done.status_code == 303
    return client


def _executable(html: str) -> list[str]:
    """Markup of the payloads that a browser would run: raw tags, not their escaped text."""
    return [p for p in ("<img src=x", "<script>alert", "</textarea><script>") if p in html]


def test_dag_author_and_run_id_markup_is_escaped(settings: Settings, db: Database) -> None:
    write_dag(settings, "hostile.py", HOSTILE_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    client = _browser(settings, db, role="operator")
    run_id = quote(IMG + SCRIPT, safe="")
    for url in (
        "/dags/hostile/grid",
        "/dags/hostile/graph",
        "/dags/hostile/trigger",
        "/dags/hostile/resources",
        f"/dags/hostile/grid?run_id={run_id}",
        f"/dags/hostile/runs/{run_id}/tasks/say",
        f"/dags/hostile/runs/{run_id}/gantt",
        f"/dags/hostile/runs/{run_id}/tasks/{run_id}",
    ):
        resp = client.get(url)
        assert resp.status_code in (200, 404), (url, resp.status_code)
        assert resp.headers["content-type"].startswith("text/html")
        assert _executable(resp.text) == [], url
        assert "&lt;img src=x onerror=alert(1)&gt;" in resp.text, url  # shown, as text
    trigger = client.get("/dags/hostile/trigger").text
    assert 'value="&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in trigger  # the param's default
    assert "&lt;/textarea&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in trigger  # inside the JSON textarea
    # a Param's title, description, enum values and their labels are text too
    assert '<option value="&#34;&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" >' in trigger
    assert ">&lt;/textarea&gt;&lt;script&gt;alert(2)&lt;/script&gt;</option>" in trigger


def test_unknown_dag_is_an_html_404_for_a_browser_and_hidden_from_anonymous(settings: Settings, db: Database) -> None:
    client = _browser(settings, db)
    for url in ("/dags/nope/grid", "/dags/nope/graph", "/dags/nope/trigger", "/dags/nope/runs/r/tasks/t"):
        page = client.get(url)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), url
        assert "no DAG &#39;nope&#39;" in page.text and 'href="/"' in page.text, url
        api_style = client.get(url, headers={"Accept": "application/json"})
        assert api_style.status_code == 404 and api_style.json()["error"] == "DagNotFound"
    unknown_path = client.get("/no/such/page")
    assert unknown_path.status_code == 404 and "/no/such/page" in unknown_path.text and "<h1>" in unknown_path.text
    assert client.get("/api/v1/no-such").json() == {"detail": "Not Found"}  # the API stays JSON
    with TestClient(create_app(settings, db), follow_redirects=False) as anon:
        for url in ("/dags/nope/grid", "/dags/nope/trigger", "/dags/nope/runs/r/tasks/t", "/no/such/page"):
            for accept in ("text/html", "application/json"):
                resp = anon.get(url, headers={"Accept": accept})
                assert resp.status_code in (303, 404), (url, accept)
                if resp.status_code == 303:
                    assert resp.headers["location"].startswith("/login?next="), url
                else:  # an unknown path: no page to log in to, and no DAG lookup happened
                    assert url == "/no/such/page" and accept == "application/json"


def test_pages_carry_security_headers_and_are_not_compressed(settings: Settings, db: Database) -> None:
    client = _browser(settings, db)
    page = client.get("/pools", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and len(page.content) > 1000
    assert "content-encoding" not in page.headers  # CSRF token + reflected input: no compression oracle
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # no inline script: the policy allows only /static files
    js = client.get("/static/vendor/dagre.min.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-encoding"] == "gzip" and "dagre" in js.text
