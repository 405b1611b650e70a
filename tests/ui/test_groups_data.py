"""Task groups and edge labels in the grid and graph JSON (``/ui/data``), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from headrace.api.users import create_token, create_user
from headrace.authoring.dag import DAG
from headrace.authoring.edges import Label
from headrace.authoring.task_group import TaskGroup
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.operators import EmptyOperator
from headrace.scheduler.runs import trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.ui.groups import aggregate_state, grid_rows, ui_groups
from headrace.webapp import create_app
from tests.scheduler.conftest import move_ti, tis

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _dag() -> DAG:
    with DAG("grouped", start_date=NOW - timedelta(days=1), schedule=None) as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g", tooltip="a group") as g:
            a = EmptyOperator(task_id="a")
            with TaskGroup("h") as h:
                EmptyOperator(task_id="b")
            a >> h
        end = EmptyOperator(task_id="end")
        start >> Label("go") >> g >> end
    return dag


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult("/dags/grouped.py", dags=[serialize_dag(_dag())]), 0.0, 0, NOW
        )
        user = create_user(session, "vera", "correct horse battery", "viewer", now=NOW)
        token, _ = create_token(session, user, "t", now=NOW)
    with TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_aggregate_state_follows_airflows_priority() -> None:
    assert aggregate_state([]) is None
    assert aggregate_state(["success", "failed", "running"]) == "failed"
    assert aggregate_state(["success", "running", "none"]) == "running"
    assert aggregate_state(["success", "skipped"]) == "success"
    assert aggregate_state(["skipped", "skipped"]) == "skipped"
    assert aggregate_state(["success", "upstream_failed", "up_for_retry"]) == "upstream_failed"


def test_grid_rows_are_a_tree_in_task_order() -> None:
    data = serialize_dag(_dag())
    groups = ui_groups(data)
    assert [(g.id, g.parent, g.task_ids) for g in groups] == [("g", None, ["g.a", "g.h.b"]), ("g.h", "g", ["g.h.b"])]
    rows = grid_rows(["start", "g.a", "g.h.b", "end"], groups)
    assert [(r.id, r.group, r.depth, r.parent) for r in rows] == [
        ("start", False, 0, None),
        ("g", True, 0, None),
        ("g.a", False, 1, "g"),
        ("g.h", True, 1, "g"),
        ("g.h.b", False, 2, "g.h"),
        ("end", False, 0, None),
    ]


def test_grid_has_group_rows_with_aggregated_states(client: TestClient, db: Database) -> None:
    with db.session() as session:
        run_id = trigger_dag(session, "grouped", logical_date=NOW, now=NOW).run_id
    ids = tis(db, run_id)
    move_ti(db, ids["start"].id, TI.SUCCESS)
    move_ti(db, ids["g.a"].id, TI.SUCCESS)
    move_ti(db, ids["g.h.b"].id, TI.FAILED)
    grid = client.get("/ui/data/dags/grouped/grid").json()
    assert grid["task_ids"] == ["start", "g.a", "g.h.b", "end"]
    assert [g["id"] for g in grid["groups"]] == ["g", "g.h"]
    assert grid["groups"][0]["tooltip"] == "a group"
    assert [r["id"] for r in grid["rows"]] == ["start", "g", "g.a", "g.h", "g.h.b", "end"]
    assert grid["states"] == ["SSFn"]
    assert grid["group_states"] == ["FF"]  # g: success + failed → failed; g.h: failed


def test_graph_has_groups_their_states_and_edge_labels(client: TestClient, db: Database) -> None:
    with db.session() as session:
        run_id = trigger_dag(session, "grouped", logical_date=NOW, now=NOW).run_id
    move_ti(db, tis(db, run_id)["g.a"].id, TI.SUCCESS)
    graph = client.get("/ui/data/dags/grouped/graph").json()
    assert {n["id"] for n in graph["nodes"]} == {"start", "g.a", "g.h.b", "end"}
    assert [g["id"] for g in graph["groups"]] == ["g", "g.h"]
    assert graph["groups"][0]["children"] == ["g.a", "g.h"]
    assert graph["group_states"] == {"g": "none", "g.h": "none"}
    assert graph["labels"] == [["start", "g.a", "go"]]


def test_dags_without_groups_have_empty_group_fields(client: TestClient, settings: Settings, db: Database) -> None:
    with DAG("flat", start_date=NOW, schedule=None) as flat:
        EmptyOperator(task_id="x") >> EmptyOperator(task_id="y")
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult("/dags/flat.py", dags=[serialize_dag(flat)]), 0.0, 0, NOW
        )
    grid = client.get("/ui/data/dags/flat/grid").json()
    assert grid["groups"] == [] and grid["rows"] == [] and grid["group_states"] == []
    graph = client.get("/ui/data/dags/flat/graph").json()
    assert graph["groups"] == [] and graph["labels"] == [] and graph["group_states"] == {}
