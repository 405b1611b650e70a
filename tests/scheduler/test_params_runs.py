"""Params through the DAG processor and the scheduler, on both databases.

The processor stores params with their schemas (no user code is needed to
validate a trigger) and makes a DAG whose defaults are invalid an import error
with its file and line. A scheduled run uses the defaults; a triggered run's
conf overrides them; tasks see the result as ``{{ params.x }}`` and
``context["params"]``; a backfill's conf is validated like a trigger's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.dagfiles.serialization import SerializedDag
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, ImportError_, XCom
from headrace.exceptions import ParamValidationError
from headrace.scheduler.runs import create_backfill, create_runs, trigger_dag
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

PARAMS_DAG = """
    from datetime import datetime

    from headrace import DAG, Param
    from headrace.operators import BashOperator, PythonOperator

    def show(params):
        return params

    with DAG(
        "params_run",
        schedule="@daily",
        start_date=datetime(2026, 1, 1),
        params={"env": Param("dev", enum=["dev", "prod"]), "count": Param(3, type="integer", minimum=1), "n": 1},
    ):
        BashOperator(task_id="echo", bash_command="echo count={{ params.count }} env={{ params.env }}")
        PythonOperator(task_id="show", python_callable=show)
"""

BAD_DEFAULT = """
    from headrace import DAG, Param

    with DAG("bad_default", params={"count": Param("three", type="integer")}):
        pass
"""


def xcoms(db: Database, run_id: str) -> dict[str, object]:
    with db.read_session() as session:
        rows = session.scalars(select(XCom).where(XCom.run_id == run_id, XCom.key == "return_value"))
        return {x.task_id: json.loads(x.value) for x in rows}


def test_an_invalid_default_is_an_import_error_at_its_line(settings: Settings, db: Database) -> None:
    path = write_dag(settings, "bad_default.py", BAD_DEFAULT)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 1
    with db.read_session() as session:
        (error,) = session.scalars(select(ImportError_))
        assert session.get(DagModel, "bad_default") is None
        assert (error.fileloc, error.lineno) == (str(path), 4)
        assert f"{path}:4: DAG 'bad_default': param 'count': \"three\" is not of type integer" in error.message


def test_params_are_stored_with_their_schemas(settings: Settings, db: Database) -> None:
    write_dag(settings, "params_run.py", PARAMS_DAG)
    write_dag(settings, "plain.py", 'from headrace import DAG\nplain = DAG("plain", params={"n": 1})\n')
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with db.read_session() as session:
        stored = {v.dag_id: v.serialized for v in session.scalars(select(DagVersion))}
    assert stored["params_run"]["params"] == {"count": 3, "env": "dev", "n": 1}
    assert stored["params_run"]["param_specs"][1] == {
        "name": "count",
        "default": 3,
        "description": None,
        "schema": {"minimum": 1, "type": "integer"},
    }
    assert [spec["name"] for spec in stored["params_run"]["param_specs"]] == ["env", "count", "n"]  # as declared
    assert "param_specs" not in stored["plain"]  # plain values serialize as before: the DAG's hash is unchanged
    sdag = SerializedDag.from_dict(stored["params_run"])
    assert sdag.params_dict.get_param("env").schema == {"enum": ["dev", "prod"]}


def test_scheduled_runs_use_the_defaults_and_triggers_override_them(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "params_run.py", PARAMS_DAG)
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        assert create_runs(session, datetime.now(UTC)) == 1
        manual = trigger_dag(session, "params_run", conf={"count": 7, "extra": "x"}, now=datetime.now(UTC)).run_id
        with pytest.raises(ParamValidationError, match=r"param 'env': \"qa\" is not one of"):
            trigger_dag(session, "params_run", conf={"env": "qa"}, run_id="refused", now=datetime.now(UTC))
    run_scheduler_until_done(fast, db)
    with db.read_session() as session:
        runs = {r.run_type: r.run_id for r in session.scalars(select(DagRun))}
    assert set(runs) == {"scheduled", "manual"} and runs["manual"] == manual
    assert xcoms(db, runs["scheduled"]) == {"echo": "count=3 env=dev", "show": {"count": 3, "env": "dev", "n": 1}}
    assert xcoms(db, manual) == {
        "echo": "count=7 env=dev",
        "show": {"count": 7, "env": "dev", "n": 1, "extra": "x"},
    }


def test_a_backfill_conf_is_validated_too(settings: Settings, db: Database) -> None:
    write_dag(settings, "params_run.py", PARAMS_DAG)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with db.session() as session:
        with pytest.raises(ParamValidationError, match=r"param 'count': 0 is less than the minimum 1"):
            create_backfill(session, "params_run", start, start + timedelta(days=2), conf={"count": 0}, now=start)
        assert session.scalars(select(DagRun.id)).first() is None
        runs = create_backfill(session, "params_run", start, start + timedelta(days=2), conf={"count": 2}, now=start)
        assert len(runs) == 3 and {r.conf["count"] for r in runs} == {2}
