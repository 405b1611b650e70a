"""Trigger conf against the DAG's params, through the real API server (uvicorn on 127.0.0.1), on both databases.

A conf value that fails its param's JSON schema, or a missing value for a param
without default, is a 400 naming the param and the reason, and no run is
created; a valid conf creates the run with the conf as given.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun
from tests.api.conftest import served_client
from tests.integration.helpers import write_dag

PARAMS_DAG = """
    from headrace import DAG, Param
    from headrace.operators import BashOperator

    with DAG(
        "with_params",
        params={
            "count": Param(3, type="integer", minimum=1, maximum=10, title="Count"),
            "env": Param("dev", type="string", enum=["dev", "prod"]),
            "table": Param(type="string", description="the table to load"),
            "note": Param(None, type=["null", "string"]),
            "plain": "anything",
        },
    ):
        BashOperator(task_id="echo", bash_command="echo {{ params.count }}")
"""
RUNS = "/api/v1/dags/with_params/dagRuns"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[httpx.Client]:
    """An operator's client of a real server on a free port, DAG ``with_params`` parsed."""
    write_dag(settings, "with_params.py", PARAMS_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with served_client(settings, db, "operator", "params-op") as c:
        yield c


def run_ids(db: Database) -> list[str]:
    with db.read_session() as session:
        return sorted(session.scalars(select(DagRun.run_id)))


@pytest.mark.parametrize(
    ("conf", "param", "reason"),
    [
        ({"table": "t", "count": "3"}, "count", '"3" is not of type integer'),
        ({"table": "t", "count": 11}, "count", "11 is greater than the maximum 10"),
        ({"table": "t", "env": "qa"}, "env", '"qa" is not one of ["dev", "prod"]'),
        ({"table": "t", "note": 5}, "note", "5 is not of type null or string"),
        ({"count": 2}, "table", "no value given and the param has no default"),
        ({"table": None}, "table", "null is not of type string"),
    ],
)
def test_a_bad_conf_is_400_naming_the_param_and_creates_no_run(
    client: httpx.Client, db: Database, conf: dict[str, object], param: str, reason: str
) -> None:
    refused = client.post(RUNS, json={"dag_run_id": "bad", "conf": conf})
    assert refused.status_code == 400, refused.text
    assert refused.json() == {
        "detail": f"param {param!r}: {reason}",
        "error": "ParamValidationError",
        "param": param,
        "reason": reason,
    }
    assert run_ids(db) == []


def test_a_valid_conf_creates_the_run_with_its_conf(client: httpx.Client, db: Database) -> None:
    conf = {"table": "users", "count": 10, "env": "prod", "note": None, "extra": {"not": "a param"}}
    created = client.post(RUNS, json={"dag_run_id": "good", "conf": conf})
    assert created.status_code == 200, created.text
    assert created.json()["conf"] == conf
    assert run_ids(db) == ["good"]
    with db.read_session() as session:
        assert session.scalars(select(DagRun.conf)).one() == conf
