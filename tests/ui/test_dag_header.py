"""A DAG's warnings on its pages, in process (TestClient, SQLite and PostgreSQL): the DAG header (grid, graph, Gantt, resources) lists them.

The DAG list draws its badges in the browser from ``GET /api/v1/dags`` (see
``test_browser.py``); here the server-rendered header of every DAG page.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from tests.integration.helpers import write_dag
from tests.ui.test_page_security import IMG, _browser

WARNED_DAG = f"""
from headrace import DAG
from headrace.operators import BashOperator

with DAG(dag_id="warned", default_args={{{IMG!r}: 1}}) as dag:
    BashOperator(task_id="say", bash_command="echo hi", email_on_failure=True)

with DAG(dag_id="clean") as clean:
    BashOperator(task_id="say", bash_command="echo hi")
"""


def test_dag_pages_list_the_dags_warnings(settings: Settings, db: Database) -> None:
    write_dag(settings, "warned.py", WARNED_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    client = _browser(settings, db, role="operator")
    for url in ("/dags/warned/grid", "/dags/warned/graph", "/dags/warned/resources", "/dags/warned/runs/r/gantt"):
        html = client.get(url).text
        assert 'id="dag-warnings"' in html and "2 DAG warnings" in html, url
        assert (
            "task &#39;say&#39;: argument &#39;email_on_failure&#39; is an Airflow operator argument headrace "
            "does not support yet; it is ignored"
        ) in html, url
        assert "default_args key &#39;&lt;img src=x onerror=alert(1)&gt;&#39; is accepted by no task" in html, url
        assert "<img src=x" not in html, url  # the author's key is text, not markup
        assert 'data-warning-type="unsupported_argument"' in html and 'data-warning-type="unused_default_arg"' in html
    for url in ("/dags/clean/grid", "/dags/clean/graph", "/dags/clean/resources"):
        assert 'id="dag-warnings"' not in client.get(url).text, url
    assert 'id="dag-warnings"' not in client.get("/dags/nope/resources").text
