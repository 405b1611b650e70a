"""The DAG pages' upstream/downstream links through ExternalTaskSensor, TriggerDagRunOperator and
ExternalTaskMarker (both sides of each link), in process (TestClient, SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from tests.integration.helpers import write_dag
from tests.ui.test_page_security import _browser

DAGS = """
from headrace import DAG
from headrace.operators import EmptyOperator, TriggerDagRunOperator
from headrace.sensors import ExternalTaskMarker, ExternalTaskSensor

with DAG("load_x", schedule=None):
    EmptyOperator(task_id="load") >> ExternalTaskMarker(task_id="mark", external_dag_id="report_x",
                                                        external_task_id="wait")
    TriggerDagRunOperator(task_id="kick", trigger_dag_id="notify_x")
    TriggerDagRunOperator(task_id="templated", trigger_dag_id="{{ params.target }}")

with DAG("report_x", schedule=None):
    ExternalTaskSensor(task_id="wait", external_dag_id="load_x", external_task_id="load")

with DAG("notify_x", schedule=None):
    EmptyOperator(task_id="send")

with DAG("alone", schedule=None):
    EmptyOperator(task_id="solo")
"""


def _links(html: str) -> str:
    if 'id="dag-links"' not in html:
        return ""
    return re.sub(r"\s+", " ", html.split('id="dag-links"')[1].split("</p>")[0])


def test_dag_pages_link_dags_through_sensors_triggers_and_markers(settings: Settings, db: Database) -> None:
    write_dag(settings, "linked.py", DAGS)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    client = _browser(settings, db, role="viewer")
    load = _links(client.get("/dags/load_x/grid").text)
    assert 'downstream (through ExternalTaskMarker): <a href="/dags/report_x/grid">report_x</a>' in load
    assert 'downstream (through ExternalTaskSensor): <a href="/dags/report_x/grid">report_x</a>' in load
    assert 'downstream (through TriggerDagRunOperator): <a href="/dags/notify_x/grid">notify_x</a>' in load
    assert "upstream" not in load and "params.target" not in load  # a templated id links nowhere
    report = _links(client.get("/dags/report_x/graph").text)
    assert 'upstream (through ExternalTaskMarker): <a href="/dags/load_x/grid">load_x</a>' in report
    assert 'upstream (through ExternalTaskSensor): <a href="/dags/load_x/grid">load_x</a>' in report
    assert "downstream" not in report
    notify = _links(client.get("/dags/notify_x/grid").text)
    assert notify == (
        ' style="margin-top:-4px"> <span class="task-link" data-direction="upstream">upstream (through '
        'TriggerDagRunOperator): <a href="/dags/load_x/grid">load_x</a></span> '
    )
    assert _links(client.get("/dags/alone/grid").text) == ""
