"""A task's params (the DAG's merged with its task group's ``default_args['params']`` and its own ``params=``)
in the REST API's task detail and on the task instance page; the trigger form keeps the DAG's params only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from tests.api.conftest import PASSWORD, anon, api, app, client_as, session_client  # noqa: F401 — fixtures
from tests.integration.helpers import write_dag

PARAMS_DAG = """
from headrace import DAG, Param, TaskGroup
from headrace.operators import EmptyOperator

with DAG("with_task_params", params={"env": Param("dev", enum=["dev", "prod"], description="where"), "n": 1}):
    plain = EmptyOperator(task_id="plain")
    own = EmptyOperator(
        task_id="own", params={"n": 5, "limit": Param(10, type="integer", minimum=1, description="rows at most")}
    )
    with TaskGroup("grp", default_args={"params": {"colour": "blue"}}):
        grouped = EmptyOperator(task_id="inner")
"""


def test_task_params_in_the_api_task_detail_and_on_the_task_instance_page(
    api: TestClient, settings: Settings, db: Database, app: Any
) -> None:
    write_dag(settings, "with_task_params.py", PARAMS_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    own = api.get("/api/v1/dags/with_task_params/tasks/own").json()["params"]
    assert own == {
        "env": {"value": "dev", "has_default": True, "description": "where", "schema": {"enum": ["dev", "prod"]}},
        "n": {"value": 5, "has_default": True, "description": None, "schema": {}},  # the task's value wins
        "limit": {
            "value": 10,
            "has_default": True,
            "description": "rows at most",
            "schema": {"minimum": 1, "type": "integer"},
        },
    }
    plain = api.get("/api/v1/dags/with_task_params/tasks/plain").json()["params"]
    assert plain.keys() == {"env", "n"} and plain["n"]["value"] == 1  # the DAG's alone
    inner = api.get("/api/v1/dags/with_task_params/tasks/grp.inner").json()["params"]
    assert inner["colour"]["value"] == "blue" and inner.keys() == {"env", "n", "colour"}
    listed = {t["task_id"]: t["params"] for t in api.get("/api/v1/dags/with_task_params/tasks").json()["tasks"]}
    assert listed["own"] == own

    created = api.post("/api/v1/dags/with_task_params/dagRuns", json={"dag_run_id": "r1"})
    assert created.status_code in (200, 201), created.text
    with session_client(app, db, "viewer") as web:
        page = web.get("/dags/with_task_params/runs/r1/tasks/own")
        assert page.status_code == 200
        assert 'id="ti-params"' in page.text
        assert "<td>limit</td><td><code>10</code></td><td>rows at most</td>" in page.text
        assert "<td>n</td><td><code>5</code></td>" in page.text
        assert "<td>env</td><td><code>&#34;dev&#34;</code></td><td>where</td>" in page.text
        plain_page = web.get("/dags/with_task_params/runs/r1/tasks/plain").text
        assert "<td>n</td><td><code>1</code></td>" in plain_page and "<td>limit</td>" not in plain_page
        form = web.get("/dags/with_task_params/trigger").text  # Airflow's trigger form: the DAG's params only
        assert "env" in form and "limit" not in form and "colour" not in form
