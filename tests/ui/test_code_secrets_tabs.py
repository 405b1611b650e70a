"""The code view, the variables and connections pages and the task instance's XCom / rendered-templates tabs
through the app (``headrace.ui.code``, ``variables``, ``connections``, ``task_instance``), on both databases."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, RenderedTaskInstanceFields, TaskInstance
from headrace.secrets_store import set_variable
from headrace.ui.code import EXAMPLE_DAGS
from headrace.ui.docs import doc_md_html
from headrace.webapp import create_app
from tests.api.conftest import PASSWORD, anon, api, app, client_as, session_client  # noqa: F401 — fixtures
from tests.ui.rows import T0, add_dag, add_run, add_ti

DOCUMENTED = '''
from datetime import datetime
from headrace import DAG
from headrace.operators import BashOperator

DOC = """
# Nightly load

Loads *orders*; see [the runbook](https://runbook.example/orders).

<script>alert("doc")</script><img src="x" onerror="alert(1)"> [bad](javascript:alert(2))

| step | what |
|------|------|
| 1    | load |
"""

with DAG("documented", schedule=None, start_date=datetime(2026, 1, 1), doc_md=DOC):
    BashOperator(task_id="load", bash_command="echo '<b>' && test 1 < 2")
'''


def _parse(settings: Settings, db: Database) -> Path:
    path = settings.dags_folder / "documented.py"
    path.write_text(textwrap.dedent(DOCUMENTED))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    return path


@pytest.mark.parametrize("path", ["/dags/documented/code", "/variables", "/connections"])
def test_pages_redirect_to_login_without_a_session(anon: TestClient, path: str) -> None:
    r = anon.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_code_view_highlights_the_file_and_renders_doc_md_sanitized(settings: Settings, db: Database, app: Any) -> None:
    _parse(settings, db)
    with session_client(app, db, "viewer") as web:
        r = web.get("/dags/documented/code")
        grid = web.get("/dags/documented/grid")
        add_dag(db)  # a DAG without doc_md
        plain = web.get("/dags/mem/grid")
    assert grid.status_code == 200 and plain.status_code == 200
    # every DAG page's header carries the docs, folded (the Code tab shows them open, once)
    assert '<details class="panel dag-docs" id="dag-docs">' in grid.text and "<h1>Nightly load</h1>" in grid.text
    assert 'alert("doc")' not in grid.text
    assert 'id="dag-docs"' not in plain.text
    assert r.text.count('id="dag-docs"') == 1
    assert r.status_code == 200, r.text
    page = r.text
    assert 'href="/dags/documented/code" class="active">Code</a>' in page
    assert '<link rel="stylesheet" href="/static/source.css">' in page
    # Pygments: keywords and strings in their classes, line numbers linked, the source escaped
    assert '<span class="kn">from</span>' in page and '<span class="s2">' in page
    assert 'href="#L-1"' in page
    assert "&lt;b&gt;" in page and "echo '<b>'" not in page
    # doc_md: Markdown rendered (heading, emphasis, link, table), the author's HTML and script gone
    assert "<h1>Nightly load</h1>" in page and "<em>orders</em>" in page and "<td>load</td>" in page
    assert '<a href="https://runbook.example/orders" rel="noopener noreferrer">the runbook</a>' in page
    docs = page[page.index('id="dag-docs"') : page.index("</details>", page.index('id="dag-docs"'))]
    assert "<script" not in docs and "onerror" not in docs and "javascript:" not in docs
    assert '<img src="x">' in docs


def test_doc_md_naming_a_markdown_file_shows_that_file(settings: Settings, db: Database, app: Any) -> None:
    """Airflow's ``doc_md="README.md"``: the file beside the DAG file (or in ``template_searchpath``)."""
    (settings.dags_folder / "docs").mkdir()
    (settings.dags_folder / "docs" / "nightly.md").write_text("# Nightly from a file\n\nSee *the runbook*.\n")
    (settings.dags_folder / "doc_file.py").write_text(
        textwrap.dedent("""
        from datetime import datetime
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("doc_file", schedule=None, start_date=datetime(2026, 1, 1), doc_md="docs/nightly.md"):
            EmptyOperator(task_id="a")
        with DAG("doc_missing", schedule=None, start_date=datetime(2026, 1, 1), doc_md="docs/absent.md"):
            EmptyOperator(task_id="a")
        """)
    )
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with session_client(app, db, "viewer") as web:
        found = web.get("/dags/doc_file/code")
        missing = web.get("/dags/doc_missing/code")
    assert found.status_code == 200 and missing.status_code == 200
    assert "<h1>Nightly from a file</h1>" in found.text and "<em>the runbook</em>" in found.text
    assert "docs/absent.md" in missing.text  # a name found nowhere stays as written


def test_code_view_refuses_a_file_outside_the_dags_folders(
    settings: Settings, db: Database, app: Any, tmp_path: Path
) -> None:
    _parse(settings, db)
    outside = tmp_path / "secret_notes.py"
    outside.write_text("TOKEN = 'do-not-show-me'\n")
    link = settings.dags_folder / "link.py"
    os.symlink(outside, link)
    with session_client(app, db, "admin") as web:
        for fileloc in (str(outside), str(link), str(settings.dags_folder / ".." / "secret_notes.py")):
            with db.session() as s:
                model = s.get(DagModel, "documented")
                assert model is not None
                model.fileloc = fileloc
            r = web.get("/dags/documented/code", headers={"Accept": "text/html"})
            assert r.status_code == 403, fileloc
            assert "outside the DAGs folders" in r.text and "do-not-show-me" not in r.text
        with db.session() as s:
            model = s.get(DagModel, "documented")
            assert model is not None
            model.fileloc = str(settings.dags_folder / "gone.py")
        r = web.get("/dags/documented/code", headers={"Accept": "text/html"})
        assert r.status_code == 404 and "cannot be read" in r.text
        assert web.get("/dags/nope/code", headers={"Accept": "text/html"}).status_code == 404


def test_doc_md_html() -> None:
    assert doc_md_html(None) is None and doc_md_html("  \n") is None
    html = str(doc_md_html("```\n<tag> & co\n```\n\n<iframe src='https://x'></iframe><p style='color:red'>p</p>"))
    assert "<pre><code>&lt;tag&gt; &amp; co\n</code></pre>" in html
    assert "<iframe" not in html and "style=" not in html and "<p>p</p>" in html


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_variables_and_connections_pages(db: Database, app: Any, role: str) -> None:
    with session_client(app, db, role) as web:
        variables = web.get("/variables")
        connections = web.get("/connections")
    assert variables.status_code == 200 and connections.status_code == 200
    assert '<script src="/static/variables.js">' in variables.text
    assert '<script src="/static/connections.js">' in connections.text
    assert 'href="/variables" class="active">Variables</a>' in variables.text
    assert 'href="/connections" class="active">Connections</a>' in connections.text
    for page in (variables.text, connections.text):
        disabled = 'class="primary" disabled title="needs the operator role"' in page
        assert disabled is (role == "viewer")
        assert f'data-can-operate="{"false" if role == "viewer" else "true"}"' in page
    assert 'name="password" type="password"' in connections.text


def test_task_instance_tabs_and_rendered_fields(settings: Settings, db: Database, app: Any) -> None:
    v = add_dag(db)
    run_pk = add_run(db, v, "r1", T0)
    add_ti(db, run_pk, "hog", "success", [])
    with db.session() as s:
        set_variable(s, Encryptor.from_settings(settings), "db_password", "pw-stored-secret")
        ti = s.query(TaskInstance).filter_by(dag_run_id=run_pk, task_id="hog").one()
        s.add(
            RenderedTaskInstanceFields(
                task_instance_id=ti.id,
                try_number=1,
                rendered_fields={"bash_command": "echo pw-stored-secret <b>", "env": "None"},
                updated_at=T0,
            )
        )
    with session_client(app, db, "viewer") as web:
        page = web.get("/dags/mem/runs/r1/tasks/hog")
        assert page.status_code == 200
        assert '<a href="#xcom" data-tab="xcom">XCom</a>' in page.text
        assert '<a href="#rendered" data-tab="rendered">Rendered templates</a>' in page.text
        assert '<script src="/static/ti_tabs.js">' in page.text
        data = web.get("/ui/data/dags/mem/runs/r1/tasks/hog/rendered").json()
        assert data["try_number"] == 1
        assert data["fields"] == {"bash_command": "echo *** <b>", "env": "None"}  # a stored secret is masked
        none_yet = web.get("/ui/data/dags/mem/runs/r1/tasks/modest/rendered").json()  # no try rendered it
        assert none_yet == {"task_id": "modest", "try_number": None, "updated_at": None, "fields": None}
        assert web.get("/ui/data/dags/mem/runs/r1/tasks/nope/rendered").status_code == 404
        assert web.get("/ui/data/dags/mem/runs/r9/tasks/hog/rendered").status_code == 404


@pytest.mark.parametrize("load_examples", [True, False])
def test_code_view_of_a_bundled_example_needs_load_examples(
    settings: Settings, db: Database, load_examples: bool
) -> None:
    settings = settings.with_overrides({"core": {"load_examples": load_examples}})
    assert DagProcessor(settings, db, extra_folders=[EXAMPLE_DAGS]).refresh(datetime.now(UTC)).errors == 0
    with session_client(create_app(settings, db), db, "viewer") as web:
        r = web.get("/dags/example_bash/code", headers={"Accept": "text/html"})
    if load_examples:
        assert r.status_code == 200 and "BashOperator" in r.text
    else:  # the examples are not a folder the processor reads now: refused like any other file
        assert r.status_code == 403 and "outside the DAGs folders" in r.text
