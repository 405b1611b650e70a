"""Mapped tasks in the UI's data and pages: one grid cell per task with its indices counted by state, the
task instance page per map index (and the index list without one), rendered fields per index; SQLite and
PostgreSQL, in process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace import DAG, task
from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.db.models import RenderedTaskInstanceFields, TaskInstance
from headrace.operators import EmptyOperator
from headrace.scheduler.runs import trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.webapp import create_app
from tests.api.conftest import session_client
from tests.scheduler.conftest import move_ti

NOW = datetime(2024, 3, 1, tzinfo=UTC)


@task
def show(x: int) -> int:
    return x


def _dag() -> DAG:
    with DAG("mapped_ui", start_date=NOW - timedelta(days=1), schedule=None) as dag:
        show.expand(x=[1, 2, 3]) >> EmptyOperator(task_id="end")
    return dag


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult("/dags/mapped_ui.py", dags=[serialize_dag(_dag())]), 0.0, 0, NOW
        )
        user = create_user(session, "vera", "correct horse battery", "viewer", now=NOW)
        token, _ = create_token(session, user, "t", now=NOW)
    with TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def _indices(db: Database) -> dict[int, int]:
    with db.session() as session:
        rows = session.execute(select(TaskInstance.map_index, TaskInstance.id).where(TaskInstance.task_id == "show"))
        return {index: pk for index, pk in rows}


def test_grid_cell_counts_a_mapped_tasks_indices(client: TestClient, db: Database) -> None:
    with db.session() as session:
        run_id = trigger_dag(session, "mapped_ui", now=NOW).run_id
    ids = _indices(db)
    assert sorted(ids) == [0, 1, 2]  # a literal input: expanded when the run was created
    move_ti(db, ids[0], TI.SUCCESS)
    move_ti(db, ids[1], TI.FAILED)
    grid = client.get("/ui/data/dags/mapped_ui/grid").json()
    assert grid["task_ids"] == ["show", "end"]
    assert grid["states"] == ["Fn"]  # one cell for the mapped task: its indices' aggregate (failed first)
    assert grid["mapped"] == [{"show": {"success": 1, "failed": 1, "none": 1}}]

    listed = client.get(f"/api/v1/dags/mapped_ui/dagRuns/{run_id}/taskInstances/show/listMapped").json()
    assert [t["state"] for t in listed["task_instances"]] == ["success", "failed", "none"]

    browser = session_client(client.app, db, "viewer")  # type: ignore[arg-type]
    page = browser.get(f"/dags/mapped_ui/runs/{run_id}/tasks/show", params={"map_index": 1})
    assert page.status_code == 200 and 'data-map-index="1"' in page.text and "[1]</span>" in page.text
    without = browser.get(f"/dags/mapped_ui/runs/{run_id}/tasks/show")
    assert without.status_code == 200 and 'data-map-index="-1"' in without.text and 'id="mapped-list"' in without.text
    assert browser.get(f"/dags/mapped_ui/runs/{run_id}/tasks/show", params={"map_index": -5}).status_code == 422


def test_graph_node_of_a_mapped_task_shows_its_indices_aggregate_state_and_count(
    client: TestClient, db: Database
) -> None:
    with db.session() as session:
        run_id = trigger_dag(session, "mapped_ui", now=NOW).run_id
    ids = _indices(db)
    move_ti(db, ids[0], TI.SUCCESS)
    move_ti(db, ids[1], TI.FAILED)
    move_ti(db, ids[2], TI.SUCCESS)  # whichever row comes last, the failed index decides the node
    graph = client.get("/ui/data/dags/mapped_ui/graph", params={"run_id": run_id}).json()
    assert graph["states"] == {"show": "failed", "end": "none"}
    assert graph["mapped_counts"] == {"show": 3}
    assert {n["id"]: n["mapped"] for n in graph["nodes"]} == {"show": True, "end": False}


def test_removed_indices_in_the_grid_the_api_and_the_page(client: TestClient, db: Database) -> None:
    with db.session() as session:
        run_id = trigger_dag(session, "mapped_ui", now=NOW).run_id
    ids = _indices(db)
    move_ti(db, ids[0], TI.SUCCESS)
    move_ti(db, ids[1], TI.SUCCESS)
    move_ti(db, ids[2], TI.REMOVED)  # as a new expansion to 2 leaves it
    grid = client.get("/ui/data/dags/mapped_ui/grid").json()
    assert grid["codes"]["X"] == "removed"
    assert grid["states"] == ["Sn"]  # a removed index does not decide the cell's state
    assert grid["mapped"] == [{"show": {"success": 2, "removed": 1}}]

    base = f"/api/v1/dags/mapped_ui/dagRuns/{run_id}/taskInstances"
    removed = client.get(base, params={"state": "removed"}).json()
    assert [(t["task_id"], t["map_index"]) for t in removed["task_instances"]] == [("show", 2)]
    listed = client.get(f"{base}/show/listMapped").json()
    assert [t["state"] for t in listed["task_instances"]] == ["success", "success", "removed"]
    assert client.get(f"{base}/show/2").json()["state"] == "removed"

    browser = session_client(client.app, db, "viewer")  # type: ignore[arg-type]
    page = browser.get(f"/dags/mapped_ui/runs/{run_id}/tasks/show", params={"map_index": 2})
    assert page.status_code == 200 and 'data-map-index="2"' in page.text
    css = browser.get("/static/ui.css").text
    assert ".state-removed { background: var(--s-removed); }" in css
    js = browser.get("/static/ui.js").text
    assert 'removed: "#d3d3d3"' in js  # the legend and the graph take their colours from ui.js


def test_rendered_fields_per_map_index(client: TestClient, db: Database) -> None:
    with db.session() as session:
        run_id = trigger_dag(session, "mapped_ui", now=NOW).run_id
    ids = _indices(db)
    with db.session() as session:
        for index, pk in ids.items():
            session.add(
                RenderedTaskInstanceFields(
                    task_instance_id=pk,
                    try_number=1,
                    rendered_fields={"op_kwargs": f"{{'x': {index + 1}}}"},
                    updated_at=NOW,
                )
            )
    url = f"/ui/data/dags/mapped_ui/runs/{run_id}/tasks/show/rendered"
    assert client.get(url, params={"map_index": 2}).json()["fields"] == {"op_kwargs": "{'x': 3}"}
    assert client.get(url, params={"map_index": 0}).json()["fields"] == {"op_kwargs": "{'x': 1}"}
    assert client.get(url).json()["fields"] is None  # no unmapped task instance
