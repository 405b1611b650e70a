"""The Gantt, resources and pools pages themselves (``headrace.ui.gantt``, ``resources``, ``pools``):
login redirects, what a viewer and an operator see, HTML 404s, and assets served locally.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from headrace.db.engine import Database
from tests.api.conftest import PASSWORD, anon, api, app, client_as, session_client  # noqa: F401 — fixtures
from tests.ui.rows import T0, add_dag, add_run


@pytest.mark.parametrize("path", ["/dags/mem/runs/r1/gantt", "/dags/mem/resources", "/pools"])
def test_pages_redirect_to_login_without_a_session(db: Database, anon: TestClient, path: str) -> None:
    v = add_dag(db)
    add_run(db, v, "r1", T0)
    r = anon.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def test_pages_render_for_a_logged_in_viewer(db: Database, app: Any) -> None:
    v = add_dag(db)
    add_run(db, v, "manual__1", T0)
    with session_client(app, db, "viewer") as web:
        gantt = web.get("/dags/mem/runs/manual__1/gantt")
        assert gantt.status_code == 200
        assert 'id="gantt" data-dag-id="mem" data-run-id="manual__1"' in gantt.text
        assert '<script src="/static/gantt.js">' in gantt.text
        assert 'href="/dags/mem/runs/manual__1/gantt" class="active">Gantt</a>' in gantt.text  # the DAG page tabs

        res = web.get("/dags/mem/resources", params={"runs": 20})
        assert res.status_code == 200
        assert 'data-dag-id="mem" data-runs="20"' in res.text
        assert '<script src="/static/vendor/chart.umd.min.js">' in res.text
        assert 'href="/dags/mem/resources" class="active">Resources</a>' in res.text
        assert web.get("/dags/mem/resources", params={"runs": 0}).status_code == 422

        pools = web.get("/pools")
        assert pools.status_code == 200 and '<script src="/static/pools.js">' in pools.text
        # a viewer's create button is disabled (the API refuses the change anyway)
        assert 'class="primary" disabled title="needs the operator role"' in pools.text
        assert 'data-can-operate="false"' in pools.text


def test_pool_form_is_enabled_for_an_operator(db: Database, app: Any) -> None:
    with session_client(app, db, "operator") as web:
        text = web.get("/pools").text
        assert 'data-can-operate="true"' in text
        assert "disabled" not in text.split('id="pool-create"', 1)[1].split("</form>", 1)[0]


def test_unknown_dag_or_run_renders_a_404_page(db: Database, app: Any) -> None:
    v = add_dag(db)
    add_run(db, v, "r1", T0)
    with session_client(app, db, "viewer") as web:
        r = web.get("/dags/mem/runs/nope/gantt")
        assert r.status_code == 404 and "DAG run &#39;nope&#39; of DAG &#39;mem&#39; not found" in r.text
        r = web.get("/dags/nope/resources")
        assert r.status_code == 404 and "DAG &#39;nope&#39; not found" in r.text
        assert "gantt.js" not in web.get("/dags/nope/runs/r1/gantt").text


@pytest.mark.parametrize(
    "path",
    [
        "/static/gantt.js",
        "/static/pools.js",
        "/static/resources.js",
        "/static/extra.css",
        "/static/vendor/chart.umd.min.js",
    ],
)
def test_page_assets_are_served_locally(anon: TestClient, path: str) -> None:
    r = anon.get(path)
    assert r.status_code == 200 and len(r.content) > 500
