"""UI data for setup/teardown (graph roles) and depends_on_past (why a task instance waits), SQLite and PG."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from headrace.api.users import create_token, create_user
from headrace.authoring.dag import DAG
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.operators import EmptyOperator
from headrace.scheduler.runs import trigger_dag
from headrace.webapp import create_app

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _dag() -> DAG:
    with DAG("st_view", start_date=NOW - timedelta(days=1), schedule=None) as dag:
        make = EmptyOperator(task_id="make").as_setup()
        drop = EmptyOperator(task_id="drop").as_teardown(setups=make)
        with make >> drop:
            EmptyOperator(task_id="work", depends_on_past=True)
    return dag


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult("/dags/st_view.py", dags=[serialize_dag(_dag())]), 0.0, 0, NOW
        )
        user = create_user(session, "vera", "correct horse battery", "viewer", now=NOW)
        token, _ = create_token(session, user, "t", now=NOW)
    with TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_graph_marks_setup_and_teardown_tasks(client: TestClient) -> None:
    graph = client.get("/ui/data/dags/st_view/graph").json()
    assert {n["id"]: n["role"] for n in graph["nodes"]} == {"make": "setup", "work": None, "drop": "teardown"}
    assert sorted(map(tuple, graph["edges"])) == [("make", "drop"), ("make", "work"), ("work", "drop")]


def test_task_instance_data_says_why_the_previous_run_holds_it(client: TestClient, db: Database) -> None:
    with db.session() as session:
        first = trigger_dag(session, "st_view", logical_date=NOW, now=NOW).run_id
        second = trigger_dag(session, "st_view", logical_date=NOW + timedelta(days=1), now=NOW).run_id
    held = client.get(f"/ui/data/dags/st_view/runs/{second}/tasks/work").json()
    assert held["waiting"] == (
        f"depends_on_past: task 'work' is 'none' in the previous run {first!r}, not success or skipped"
    )
    assert client.get(f"/ui/data/dags/st_view/runs/{first}/tasks/work").json()["waiting"] is None
    assert client.get(f"/ui/data/dags/st_view/runs/{second}/tasks/make").json()["waiting"] is None
