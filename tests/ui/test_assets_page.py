"""The assets page and the DAG pages' upstream/downstream links through assets, in process (TestClient,
SQLite and PostgreSQL): producers, consumers, recent events with the runs they triggered; names escaped."""

from __future__ import annotations

from datetime import UTC, datetime

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.assets import create_external_event
from headrace.db.engine import Database
from headrace.scheduler.asset_runs import create_asset_runs
from headrace.scheduler.dagcache import DagCache
from tests.integration.helpers import write_dag
from tests.ui.test_page_security import _browser

DAGS = """
from datetime import datetime
from headrace import DAG, Asset
from headrace.operators import EmptyOperator

raw = Asset(name="<b>raw</b>", uri="s3://lake/raw.csv")
clean = Asset("s3://lake/clean.csv")

with DAG("extract", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="pull", outlets=[raw])

with DAG("transform", schedule=[raw]):
    EmptyOperator(task_id="tidy", outlets=[clean])

with DAG("report", schedule=[clean]):
    EmptyOperator(task_id="render")
"""


def test_assets_page_and_dag_links(settings: Settings, db: Database) -> None:
    write_dag(settings, "assets.py", DAGS)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    now = datetime.now(UTC)
    with db.session() as session:
        create_external_event(session, uri="s3://lake/raw.csv", name=None, extra={"rows": 5}, at=now)
    with db.session() as session:
        assert create_asset_runs(session, now, cache=DagCache()) == 1
    client = _browser(settings, db, role="viewer")
    html = client.get("/assets").text
    assert 'id="assets"' in html and "s3://lake/raw.csv" in html and "s3://lake/clean.csv" in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html and "<b>raw</b>" not in html
    assert '<a href="/dags/extract/graph">extract</a>.pull' in html
    assert '<a href="/dags/transform/grid">transform</a>' in html
    assert 'id="asset-events"' in html and "external" in html and '{"rows": 5}' in html
    assert "/dags/transform/graph?run_id=asset_triggered__" in html and "queued" in html

    transform = client.get("/dags/transform/grid").text
    assert 'id="dag-links"' in transform
    assert 'upstream (through <a href="/assets">assets</a>):' in transform
    assert '<a href="/dags/extract/grid">extract</a>' in transform
    assert '<a href="/dags/report/grid">report</a>' in transform
    assert 'id="dag-links"' in client.get("/dags/report/graph").text
    assert "downstream" not in client.get("/dags/report/graph").text.split('id="dag-links"')[1].split("</p>")[0]


def test_graph_data_draws_assets(settings: Settings, db: Database) -> None:
    write_dag(settings, "assets.py", DAGS)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    client = _browser(settings, db, role="viewer")
    data = client.get("/ui/data/dags/transform/graph").json()
    assert [(a["id"], a["name"]) for a in data["assets"]] == [
        ("asset:s3://lake/raw.csv", "<b>raw</b>"),
        ("asset:s3://lake/clean.csv", "s3://lake/clean.csv"),
    ]
    assert data["asset_edges"] == [["asset:s3://lake/raw.csv", "tidy"], ["tidy", "asset:s3://lake/clean.csv"]]
    assert client.get("/ui/data/dags/extract/graph").json()["asset_edges"] == [["pull", "asset:s3://lake/raw.csv"]]
