"""TriggerDagRunOperator through the scheduler (SQLite and PostgreSQL): the supervisor creates the run
through trigger_dag (params validate conf), waits, skips or clears an existing run as asked."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, ImportError_, TaskInstance, TaskTry, XCom
from headrace.scheduler.runs import trigger_dag

from .helpers import FAST, run_scheduler_until_done, write_dag

DAG_FILE = """
from datetime import datetime

from headrace import DAG, Param, task
from headrace.operators import TriggerDagRunOperator

with DAG("target", schedule=None, start_date=datetime(2024, 1, 1), params={"n": Param(1, type="integer")}):

    @task
    def show(params=None):
        print("target got", params["n"])
        return params["n"]

    show()

with DAG("controller", schedule=None, start_date=datetime(2024, 1, 1)):
    ok = TriggerDagRunOperator(
        task_id="ok",
        trigger_dag_id="target",
        trigger_run_id="r1_{{ ds_nodash }}",
        conf={"n": 5},
        wait_for_completion=True,
        poke_interval=0.2,
    )
    again_skip = TriggerDagRunOperator(
        task_id="again_skip", trigger_dag_id="target", trigger_run_id="r1_{{ ds_nodash }}",
        skip_when_already_exists=True,
    )
    again_fail = TriggerDagRunOperator(task_id="again_fail", trigger_dag_id="target", trigger_run_id="r1_{{ ds_nodash }}")
    again_reset = TriggerDagRunOperator(
        task_id="again_reset", trigger_dag_id="target", trigger_run_id="r1_{{ ds_nodash }}",
        reset_dag_run=True, wait_for_completion=True, poke_interval=0.2, trigger_rule="all_done",
    )
    bad_conf = TriggerDagRunOperator(task_id="bad_conf", trigger_dag_id="target", conf={"n": "five"})
    missing = TriggerDagRunOperator(task_id="missing", trigger_dag_id="no_such_dag")
    bad_run_id = TriggerDagRunOperator(task_id="bad_run_id", trigger_dag_id="target", trigger_run_id="a/{{ ds }}")
    ok >> [again_skip, again_fail] >> again_reset
"""


def test_trigger_dag_run_operator_creates_waits_skips_and_resets(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(settings, "trigger.py", DAG_FILE)
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    now = datetime.now(UTC)
    with db.session() as session:
        assert list(session.scalars(select(ImportError_.message))) == []
        for model in session.scalars(select(DagModel)):
            model.is_paused = False
        controller_run = trigger_dag(session, "controller", now=now, logical_date=datetime(2024, 3, 1, tzinfo=UTC))
        controller_pk = controller_run.id
    run_scheduler_until_done(settings, db, timeout=120)

    with db.read_session() as session:
        states = dict(
            session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == controller_pk)
            ).all()
        )
        errors = dict(
            session.execute(select(TaskTry.task_id, TaskTry.error).where(TaskTry.dag_id == "controller")).all()
        )
        target_runs = {
            r.run_id: (r.run_type, r.conf, r.state)
            for r in session.scalars(select(DagRun).where(DagRun.dag_id == "target"))
        }
        show_tries = session.scalar(
            select(TaskInstance.try_number).where(TaskInstance.dag_id == "target", TaskInstance.run_id == "r1_20240301")
        )
        xcoms = dict(
            session.execute(
                select(XCom.key, XCom.value).where(XCom.dag_run_id == controller_pk, XCom.task_id == "ok")
            ).all()
        )
    assert states == {
        "ok": "success",
        "again_skip": "skipped",
        "again_fail": "failed",
        "again_reset": "success",
        "bad_conf": "failed",
        "missing": "failed",
        "bad_run_id": "failed",
    }
    assert "DagRunAlreadyExists" in (errors["again_fail"] or "")
    assert "ParamValidationError" in (errors["bad_conf"] or "") and "'n'" in (errors["bad_conf"] or "")
    assert "DagNotFound" in (errors["missing"] or "")
    assert "InvalidRequest: run_id 'a/2024-03-01' does not match scheduler.allowed_run_id_pattern" in (
        errors["bad_run_id"] or ""
    )
    # one run made by the operator, with its conf; the bad conf made none; the reset ran it a second time
    assert set(target_runs) == {"r1_20240301"}
    assert target_runs["r1_20240301"] == ("manual", {"n": 5}, "success")
    assert show_tries == 2
    assert xcoms["trigger_run_id"] == '"r1_20240301"' and xcoms["trigger_dag_id"] == '"target"'
