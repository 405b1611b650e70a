"""``/api/v1/assets``: producers and consumers, events (with the runs they created), external events
(operator role, Airflow's body), errors."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from headrace import DAG, Asset
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.operators import EmptyOperator
from headrace.scheduler.asset_runs import create_asset_runs
from headrace.scheduler.dagcache import DagCache
from tests.api.conftest import ClientAs
from tests.scheduler.conftest import NOW, store_dags

A = Asset(name="penguins", uri="s3://lake/penguins.csv", group="zoo", extra={"team": "birds"})


def _store(settings: Settings, db: Database) -> None:
    with DAG("producer", schedule=None, start_date=datetime(2024, 1, 1)) as producer:
        EmptyOperator(task_id="make", outlets=[A])
    with DAG("consumer", schedule=[A]) as consumer:
        EmptyOperator(task_id="use")
    store_dags(settings, db, producer, consumer)
    from sqlalchemy import update

    from headrace.db.models import DagModel

    with db.session() as session:
        session.execute(update(DagModel).values(is_paused=False))


def test_assets_events_and_external_events(
    settings: Settings, db: Database, client_as: ClientAs, anon: TestClient
) -> None:
    _store(settings, db)
    viewer, operator = client_as("viewer"), client_as("operator")
    listed = viewer.get("/api/v1/assets").json()
    assert listed["total_entries"] == 1
    asset = listed["assets"][0]
    assert (asset["name"], asset["uri"], asset["group"], asset["extra"]) == (
        "penguins",
        "s3://lake/penguins.csv",
        "zoo",
        {"team": "birds"},
    )
    assert [d["dag_id"] for d in asset["consuming_dags"]] == ["consumer"]
    assert [(t["dag_id"], t["task_id"]) for t in asset["producing_tasks"]] == [("producer", "make")]
    assert viewer.get(f"/api/v1/assets/{asset['id']}").json() == asset
    assert viewer.get("/api/v1/assets", params={"uri_pattern": "nope"}).json()["total_entries"] == 0

    made = operator.post("/api/v1/assets/events", json={"uri": "s3://lake/penguins.csv", "extra": {"rows": 344}})
    assert made.status_code == 200, made.text
    event = made.json()
    assert (event["asset_id"], event["extra"], event["source_dag_id"], event["created_dagruns"]) == (
        asset["id"],
        {"rows": 344},
        None,
        [],
    )
    by_name = operator.post("/api/v1/assets/events", json={"name": "penguins"})
    by_id = operator.post("/api/v1/assets/events", json={"asset_id": asset["id"]})
    airflow2 = operator.post("/api/v1/assets/events", json={"dataset_uri": "s3://lake/penguins.csv"})
    assert [r.status_code for r in (by_name, by_id, airflow2)] == [200, 200, 200]

    with db.session() as session:  # the scheduler's step: one run consumes all four events
        assert create_asset_runs(session, NOW, cache=DagCache()) == 1
    events = viewer.get("/api/v1/assets/events").json()
    assert events["total_entries"] == 4
    assert [e["id"] for e in events["asset_events"]] == sorted((e["id"] for e in events["asset_events"]), reverse=True)
    assert {tuple((r["dag_id"], r["state"]) for r in e["created_dagruns"]) for e in events["asset_events"]} == {
        (("consumer", "queued"),)
    }
    assert viewer.get("/api/v1/assets/events", params={"source_dag_id": "producer"}).json()["total_entries"] == 0
    metrics = {
        f.name: f.samples[0].value
        for f in text_string_to_metric_families(viewer.get("/metrics").text)
        if f.name.startswith("headrace_asset")
    }
    assert metrics == {
        "headrace_asset_events": 4,
        "headrace_asset_triggered_runs_queued": 1,
        "headrace_asset_dags_waiting": 0,
    }

    missing = operator.post("/api/v1/assets/events", json={"uri": "s3://lake/unknown"})
    assert missing.status_code == 404 and "no asset with uri" in missing.json()["detail"]
    assert operator.post("/api/v1/assets/events", json={"asset_id": 999}).status_code == 404
    assert operator.post("/api/v1/assets/events", json={"extra": {}}).status_code == 400
    assert operator.post("/api/v1/assets/events", json={"uri": "x", "colour": "red"}).status_code == 422
    assert operator.post("/api/v1/assets/events", json={"uri": "x", "extra": [1]}).status_code == 422
    assert viewer.post("/api/v1/assets/events", json={"name": "penguins"}).status_code == 403
    assert anon.get("/api/v1/assets").status_code == 401
    assert viewer.get("/api/v1/assets/999").status_code == 404
