"""Task-level ``params=`` through the DAG processor and the scheduler, on both databases (Airflow's semantics).

A task's params are the DAG's, then ``params`` from its task groups' ``default_args``, then its own
``params=`` (``@task(params=...)`` too); a DAG's ``default_args["params"]`` merges into the DAG's params.
Defaults are validated at parse time (a bad one is an import error naming the task and the param), the
task's params are stored with the serialized task, and a try sees them in ``context["params"]`` and
``{{ params.x }}``, with the run's conf on top unless ``core.dag_run_conf_overrides_params`` is false. A conf
value the task's own schema refuses fails that task, naming the param.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagVersion, DagWarning, ImportError_, TaskInstance, TaskTry, XCom
from headrace.scheduler.runs import trigger_dag
from headrace.ui.task_instance import rendered_fields_of
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

TASK_PARAMS_DAG = """
    from datetime import datetime

    from headrace import DAG, Param, TaskGroup, task
    from headrace.operators import BashOperator, PythonOperator

    def show(params):
        return params

    with DAG(
        "task_params",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params={"env": "dev", "count": Param(3, type="integer", minimum=1)},
        default_args={"params": {"region": "eu"}},
    ):
        BashOperator(
            task_id="echo",
            bash_command="echo {{ params.env }} {{ params.count }} {{ params.region }}",
            params={"count": Param(5, type="integer", maximum=9)},
        )
        PythonOperator(task_id="dag_only", python_callable=show)

        @task(params={"env": "prod", "extra": [1, 2]})
        def own(**context):
            return dict(context["params"])

        own()
        with TaskGroup("grp", default_args={"params": {"region": "us"}}):
            PythonOperator(task_id="in_group", python_callable=show, params={"env": "qa"})
"""


def xcoms(db: Database, run_id: str) -> dict[str, object]:
    with db.read_session() as session:
        rows = session.scalars(select(XCom).where(XCom.run_id == run_id, XCom.key == "return_value"))
        return {x.task_id: json.loads(x.value) for x in rows}


def parse(settings: Settings, db: Database, body: str = TASK_PARAMS_DAG) -> None:
    write_dag(settings, "task_params.py", body)
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0


def test_task_params_override_the_dags_in_context_templates_and_rendered_fields(
    settings: Settings, db: Database
) -> None:
    fast = settings.with_overrides(FAST)
    parse(fast, db)
    with db.session() as session:
        plain = trigger_dag(session, "task_params", now=datetime.now(UTC)).run_id
        conf = trigger_dag(session, "task_params", conf={"env": "stage", "more": 1}, now=datetime.now(UTC)).run_id
    run_scheduler_until_done(fast, db)
    assert xcoms(db, plain) == {
        "echo": "dev 5 eu",
        "dag_only": {"env": "dev", "count": 3, "region": "eu"},
        "own": {"env": "prod", "count": 3, "region": "eu", "extra": [1, 2]},
        "grp.in_group": {"env": "qa", "count": 3, "region": "us"},
    }
    # the run's conf overrides every task's params of the same name (core.dag_run_conf_overrides_params)
    assert xcoms(db, conf) == {
        "echo": "stage 5 eu",
        "dag_only": {"env": "stage", "count": 3, "region": "eu", "more": 1},
        "own": {"env": "stage", "count": 3, "region": "eu", "extra": [1, 2], "more": 1},
        "grp.in_group": {"env": "stage", "count": 3, "region": "us", "more": 1},
    }
    with db.read_session() as session:  # what the rendered-templates tab shows
        fields = rendered_fields_of(session, "task_params", plain, "echo")["fields"]
    assert fields["bash_command"] == "echo dev 5 eu"


def test_task_params_are_serialized_only_where_they_differ_and_warn_no_more(settings: Settings, db: Database) -> None:
    parse(settings, db)
    with db.read_session() as session:
        (serialized,) = session.scalars(select(DagVersion.serialized).where(DagVersion.dag_id == "task_params"))
        warnings = [w.message for w in session.scalars(select(DagWarning).where(DagWarning.dag_id == "task_params"))]
    tasks = serialized["tasks"]
    assert "params" not in tasks["dag_only"]  # the DAG's params: the task serializes (and hashes) as before
    echo = {spec["name"]: spec for spec in tasks["echo"]["params"]}
    assert echo["count"] == {
        "name": "count",
        "default": 5,
        "description": None,
        "schema": {"maximum": 9, "type": "integer"},
    }
    assert [spec["name"] for spec in tasks["grp.in_group"]["params"]] == ["env", "count", "region"]
    assert serialized["params"] == {"env": "dev", "count": 3, "region": "eu"}  # default_args' params: the DAG's
    assert warnings == []


def test_a_bad_task_param_default_is_an_import_error_naming_task_and_param(settings: Settings, db: Database) -> None:
    path = write_dag(
        settings,
        "bad_task_param.py",
        """
        from headrace import DAG, Param
        from headrace.operators import EmptyOperator

        with DAG("bad_task_param", params={"n": 1}):
            EmptyOperator(task_id="fine")
            EmptyOperator(task_id="broken", params={"n": Param("x", type="integer")})
        """,
    )
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 1
    with db.read_session() as session:
        (error,) = session.execute(select(ImportError_.fileloc, ImportError_.lineno, ImportError_.message))
    assert (error.fileloc, error.lineno) == (str(path), 5)  # the DAG's line, as for the DAG's own params
    assert f"{path}:5: task 'broken': param 'n': \"x\" is not of type integer" in error.message


def test_conf_refused_by_a_tasks_own_schema_fails_that_task(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    parse(fast, db)
    with db.session() as session:  # the DAG's count allows 12; the echo task's own count has maximum 9
        trigger_dag(session, "task_params", conf={"count": 12}, now=datetime.now(UTC))
    run_scheduler_until_done(fast, db)
    with db.read_session() as session:
        states = {ti.task_id: ti.state for ti in session.scalars(select(TaskInstance))}
        errors = {t.task_id: t.error for t in session.scalars(select(TaskTry))}
    assert states == {"echo": "failed", "dag_only": "success", "own": "success", "grp.in_group": "success"}
    assert "param 'count': 12 is greater than the maximum 9" in (errors["echo"] or "")


def test_conf_does_not_override_params_when_the_setting_is_false(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides({**FAST, "core": {**FAST["core"], "dag_run_conf_overrides_params": False}})
    parse(fast, db)
    with db.session() as session:
        run_id = trigger_dag(session, "task_params", conf={"env": "stage"}, now=datetime.now(UTC)).run_id
    run_scheduler_until_done(fast, db)
    got = xcoms(db, run_id)
    assert got["echo"] == "dev 5 eu"
    assert got["own"] == {"env": "prod", "count": 3, "region": "eu", "extra": [1, 2]}
