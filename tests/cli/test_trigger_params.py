"""``headrace dags trigger --conf`` validates the conf against the DAG's params (real CLI process, both databases)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun
from tests.cli.conftest import Cli
from tests.integration.helpers import write_dag

PARAMS_DAG = """
    from headrace import DAG, Param
    from headrace.operators import EmptyOperator

    with DAG("cli_params", params={"count": Param(3, type="integer", maximum=10), "table": Param(type="string")}):
        EmptyOperator(task_id="noop")
"""


def test_a_bad_conf_is_a_one_line_error_and_no_run(cli: Cli, settings: Settings, db: Database) -> None:
    write_dag(settings, "cli_params.py", PARAMS_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    r = cli("dags", "trigger", "cli_params", "--conf", json.dumps({"table": "t", "count": 11}))
    assert r.code == 1
    assert r.err.strip().splitlines() == ["error: param 'count': 11 is greater than the maximum 10"]
    r = cli("dags", "trigger", "cli_params")
    assert r.code == 1
    assert r.err.strip().splitlines() == ["error: param 'table': no value given and the param has no default"]
    with db.read_session() as session:
        assert list(session.scalars(select(DagRun.run_id))) == []
    r = cli("dags", "trigger", "cli_params", "--conf", '{"table": "users"}', "--run-id", "ok")
    assert r.code == 0, r.err
    with db.read_session() as session:
        assert [(run.run_id, run.conf) for run in session.scalars(select(DagRun))] == [("ok", {"table": "users"})]
