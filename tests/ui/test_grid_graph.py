"""The grid and graph JSON (``headrace.ui.grid``, ``graph``) and recent runs under ``/ui/data``, in process on SQLite and PostgreSQL."""

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
from headrace.states import TaskInstanceState as TI
from headrace.ui.grid import STATE_CODES
from headrace.ui.queries import topological_order
from headrace.webapp import create_app
from tests.scheduler.conftest import move_ti, tis

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _dag() -> DAG:
    with DAG("shapes", start_date=NOW - timedelta(days=1), schedule=None, params={"n": 3, "who": "x"}) as dag:
        a, b, c, d = (EmptyOperator(task_id=t) for t in ("a", "b", "c", "d"))
        d >> b >> a  # ids sorted differ from topological order
        d >> c
    return dag


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    dag = _dag()
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult("/dags/shapes.py", dags=[serialize_dag(dag)]), 0.0, 0, NOW
        )
        user = create_user(session, "vera", "correct horse battery", "viewer", now=NOW)
        token, _ = create_token(session, user, "t", now=NOW)
    with TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def _trigger(db: Database, day: int) -> str:
    with db.session() as session:
        return trigger_dag(session, "shapes", logical_date=NOW + timedelta(days=day), now=NOW).run_id


def _set(db: Database, run_id: str, task_id: str, state: TI) -> None:
    move_ti(db, tis(db, run_id)[task_id].id, state)


def test_topological_order_puts_upstream_first() -> None:
    tasks = serialize_dag(_dag())["tasks"]
    assert topological_order(tasks) == ["d", "b", "c", "a"]


def test_grid_is_compact_and_ordered(client: TestClient, db: Database) -> None:
    first, second = _trigger(db, 0), _trigger(db, 1)
    _set(db, first, "d", TI.SUCCESS)
    _set(db, first, "b", TI.FAILED)
    _set(db, first, "a", TI.UPSTREAM_FAILED)
    _set(db, second, "d", TI.QUEUED)
    grid = client.get("/ui/data/dags/shapes/grid").json()
    assert grid["task_ids"] == ["d", "b", "c", "a"]
    assert [r["run_id"] for r in grid["runs"]] == [first, second]  # oldest first
    assert grid["states"] == ["SFnU", "qnnn"]
    assert grid["codes"] == STATE_CODES and grid["total_runs"] == 2 and grid["unfinished"] is True
    newest = client.get("/ui/data/dags/shapes/grid", params={"num_runs": 1}).json()
    assert [r["run_id"] for r in newest["runs"]] == [second] and newest["total_runs"] == 2


def test_grid_and_graph_of_unknown_dag_are_404(client: TestClient) -> None:
    resp = client.get("/ui/data/dags/nope/grid")
    assert resp.status_code == 404 and resp.json()["error"] == "DagNotFound"
    assert client.get("/ui/data/dags/nope/graph").status_code == 404


def test_graph_has_edges_and_selected_run_states(client: TestClient, db: Database) -> None:
    empty = client.get("/ui/data/dags/shapes/graph").json()
    assert empty["run"] is None and empty["states"] == {} and empty["unfinished"] is False
    assert sorted(map(tuple, empty["edges"])) == [("b", "a"), ("d", "b"), ("d", "c")]
    assert [n["id"] for n in empty["nodes"]] == ["d", "b", "c", "a"]
    assert {n["operator"] for n in empty["nodes"]} == {"EmptyOperator"}
    first, second = _trigger(db, 0), _trigger(db, 1)
    _set(db, first, "d", TI.SUCCESS)
    newest = client.get("/ui/data/dags/shapes/graph").json()
    assert newest["run"]["run_id"] == second and newest["states"]["d"] == "none"
    chosen = client.get("/ui/data/dags/shapes/graph", params={"run_id": first}).json()
    assert chosen["states"]["d"] == "success" and [r["run_id"] for r in chosen["runs"]] == [second, first]
    missing = client.get("/ui/data/dags/shapes/graph", params={"run_id": "nope"})
    assert missing.status_code == 404 and missing.json()["error"] == "DagRunNotFound"


def test_recent_runs_newest_last_limited(client: TestClient, db: Database) -> None:
    ids = [_trigger(db, day) for day in range(4)]
    body = client.get("/ui/data/recent_runs", params={"limit": 3}).json()
    assert body["recent_runs"] == {"shapes": [[rid, "queued"] for rid in ids[1:]]}


def test_data_needs_login(settings: Settings, db: Database) -> None:
    with TestClient(create_app(settings, db)) as anon:
        resp = anon.get("/ui/data/recent_runs")
    assert resp.status_code == 401 and resp.json()["error"] == "AuthenticationError"
