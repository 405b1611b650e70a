"""Deferral through the scheduler (LocalExecutor, real supervisors) and real triggerer processes, on SQLite
and PostgreSQL: defer → resume with the event (same try, slot freed); a trigger that raises; one that blocks
the event loop; one that never fires (timeout); a triggerer SIGKILLed while holding triggers.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry, Trigger, TriggererJob, XCom
from headrace.testing import run_scheduler_until
from tests.pgbouncer import WITH_PGBOUNCER
from tests.waiting import wait_until

from .helpers import (
    DEFER_FAST,
    parse_and_trigger,
    run_scheduler_until_done,
    run_states,
    ti_states,
    tries_per_ti,
    write_dag,
)

# Triggers of the tests, in a module of the DAGs folder (on the triggerer's sys.path, as Airflow's plugins).
TRIGGERS = """
import asyncio, time
from headrace.triggers import BaseTrigger, TriggerEvent

class RaisingTrigger(BaseTrigger):
    def serialize(self):
        return "test_triggers.RaisingTrigger", {}
    async def run(self):
        await asyncio.sleep(0.1)
        raise ValueError("boom from the trigger")
        yield TriggerEvent(None)

class SleepyTrigger(BaseTrigger):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
    def serialize(self):
        return "test_triggers.SleepyTrigger", {"seconds": self.seconds}
    async def run(self):
        await asyncio.sleep(0.2)
        time.sleep(self.seconds)  # blocks the event loop: the triggerer must name it
        yield TriggerEvent("woke")
"""

OPERATOR = """
from datetime import timedelta
from pathlib import Path
from headrace import DAG
from headrace.authoring.task import BaseOperator
from headrace.triggers import TimeDeltaTrigger

class Waiter(BaseOperator):
    def __init__(self, *, seconds, marker=None, trigger=None, **kwargs):
        super().__init__(**kwargs)
        self.seconds, self.marker, self.trigger = seconds, marker, trigger
    def execute(self, context):
        context["ti"].xcom_push(key="before", value="pushed before deferring")
        trigger = self.trigger() if self.trigger else TimeDeltaTrigger(timedelta(seconds=self.seconds))
        self.defer(trigger=trigger, method_name="resumed", kwargs={"extra": 7})
    def resumed(self, context, event=None, extra=None):
        if self.marker:
            with open(self.marker, "a") as f:
                f.write(f"{self.task_id} try {context['ti'].try_number}\\n")
        return {"event": str(event), "extra": extra}
"""


def _scalar(db: Database, stmt: object) -> object:
    with db.session() as session:
        return session.scalar(stmt)  # type: ignore[call-overload]


def _try_log(db: Database, task_id: str) -> str:
    with db.session() as session:
        path = session.scalars(select(TaskTry.log_path).where(TaskTry.task_id == task_id)).one()
    return Path(path).read_text()


def _xcom(db: Database, task_id: str, key: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(XCom.value).where(XCom.task_id == task_id, XCom.key == key))


@WITH_PGBOUNCER
def test_defer_resumes_with_the_event_in_the_same_try_and_frees_the_slot(
    settings: Settings, db: Database, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    settings = settings.with_overrides({**DEFER_FAST, "core": {**DEFER_FAST["core"], "parallelism": 1}})
    write_dag(
        settings,
        "defer.py",
        OPERATOR
        + """
from headrace.operators import PythonOperator
with DAG("defer"):
    Waiter(task_id="wait", seconds=1.0, priority_weight=10)
    PythonOperator(task_id="other", python_callable=lambda: "ran while wait was deferred")
""",
    )
    run_id = parse_and_trigger(settings, db, "defer")
    start_triggerer()
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "success"}
    assert ti_states(db) == {"wait": "success", "other": "success"}
    assert tries_per_ti(db) == {"wait": [1], "other": [1]}  # the resumed part is the same try
    result = _xcom(db, "wait", "return_value")
    assert result is not None and '"extra":7' in result and "+00:00" in result  # the event: the moment
    assert _xcom(db, "wait", "before") is not None  # what it pushed before deferring survives the resume
    with db.session() as session:
        wait = session.scalars(select(TaskInstance).where(TaskInstance.task_id == "wait")).one()
        assert (wait.next_method, wait.next_kwargs, wait.trigger_id) == (None, None, None)
        assert session.scalar(select(func.count()).select_from(Trigger)) == 0
        wait_try = session.scalars(select(TaskTry).where(TaskTry.task_id == "wait")).one()
        other_try = session.scalars(select(TaskTry).where(TaskTry.task_id == "other")).one()
    # parallelism 1: "other" could only run in the slot "wait" gave back while it was deferred
    assert other_try.end_date is not None and wait_try.end_date is not None
    assert other_try.end_date < wait_try.end_date
    log = _try_log(db, "wait")
    assert "deferring to headrace.triggers.DateTimeTrigger" in log
    assert "triggerer" in log and "fired" in log


def test_a_trigger_that_raises_or_blocks_is_reported_and_the_others_go_on(
    settings: Settings, db: Database, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    settings = settings.with_overrides(DEFER_FAST)
    write_dag(settings, "test_triggers.py", TRIGGERS)
    write_dag(
        settings,
        "bad_triggers.py",
        OPERATOR
        + """
import functools
from test_triggers import RaisingTrigger, SleepyTrigger
with DAG("bad_triggers"):
    Waiter(task_id="bad", seconds=0, trigger=RaisingTrigger)
    Waiter(task_id="sleepy", seconds=0, trigger=functools.partial(SleepyTrigger, 1.0))
    Waiter(task_id="fine", seconds=1.5)
""",
    )
    run_id = parse_and_trigger(settings, db, "bad_triggers")
    start_triggerer()
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "failed"}
    assert ti_states(db) == {"bad": "failed", "sleepy": "success", "fine": "success"}
    # the trigger that raised: its task failed through its try, with the trigger's traceback in the try's log
    with db.session() as session:
        bad = session.scalars(select(TaskTry).where(TaskTry.task_id == "bad")).one()
        job = session.scalars(select(TriggererJob)).one()
    assert bad.error is not None and "TaskDeferralError" in bad.error and "boom from the trigger" in bad.error
    log = _try_log(db, "bad")
    assert "Traceback" in log and "ValueError: boom from the trigger" in log
    # the trigger that blocked the loop: named on the triggerer's row (headrace doctor) and in its try's log
    assert job.blocked_seconds is not None and job.blocked_seconds >= 0.5
    assert job.blocked_detail is not None and "SleepyTrigger" in job.blocked_detail
    assert "blocked the triggerer's event loop" in _try_log(db, "sleepy")


def test_a_deferral_that_never_fires_times_out(
    settings: Settings, db: Database, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    settings = settings.with_overrides(DEFER_FAST)
    write_dag(
        settings,
        "never.py",
        """
from datetime import timedelta
from headrace import DAG
from headrace.sensors import TimeDeltaSensor
with DAG("never"):
    for soft_fail in (False, True):
        TimeDeltaSensor(task_id=f"wait_soft_{soft_fail}", delta=timedelta(days=1), deferrable=True, timeout=1,
                        retries=2, soft_fail=soft_fail)
""",
    )
    run_id = parse_and_trigger(settings, db, "never")
    start_triggerer()
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "failed"}
    assert ti_states(db) == {"wait_soft_False": "failed", "wait_soft_True": "skipped"}
    assert tries_per_ti(db) == {"wait_soft_False": [1], "wait_soft_True": [1]}  # a sensor's timeout never retries
    with db.session() as session:
        tt = session.scalars(select(TaskTry).where(TaskTry.task_id == "wait_soft_False")).one()
        assert session.scalar(select(func.count()).select_from(Trigger)) == 0
    assert tt.error is not None and "SensorTimeout" in tt.error


def test_a_sigkilled_triggerers_triggers_are_taken_over_none_lost_none_twice(
    settings: Settings, db: Database, tmp_path: Path, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    settings = settings.with_overrides(DEFER_FAST)
    marker = tmp_path / "resumed.txt"
    write_dag(
        settings,
        "takeover.py",
        OPERATOR
        + f"""
with DAG("takeover"):
    for i in range(4):
        Waiter(task_id=f"w{{i}}", seconds=4.0, marker={str(marker)!r})
""",
    )
    run_id = parse_and_trigger(settings, db, "takeover")
    first = start_triggerer()
    seen: dict[str, object] = {}

    def step() -> bool:
        if "killed" not in seen:
            with db.session() as session:
                owners = session.scalars(select(Trigger.triggerer_id)).all()
            if len(owners) == 4 and None not in owners and len(set(owners)) == 1:
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=30)
                seen["killed"], seen["owner"] = time.monotonic(), owners[0]
                seen["second"] = start_triggerer()
        elif "taken" not in seen:
            with db.session() as session:
                owners = session.scalars(select(Trigger.triggerer_id)).all()
            if owners and seen["owner"] not in owners and None not in owners:
                seen["taken"] = time.monotonic()
        return set(run_states(db).values()) <= {"success", "failed"}

    assert run_scheduler_until(settings, db, step, timeout=120)
    assert run_states(db) == {run_id: "success"}
    assert set(ti_states(db).values()) == {"success"}
    lines = sorted(marker.read_text().splitlines())
    assert lines == [f"w{i} try 1" for i in range(4)]  # every task resumed, each exactly once
    assert "killed" in seen
    with db.session() as session:
        jobs = {j.id: j for j in session.scalars(select(TriggererJob))}
    assert len(jobs) == 2
    dead = jobs[int(seen["owner"])]  # type: ignore[call-overload]
    assert dead.ended_at is None  # SIGKILLed: it never said goodbye


def test_doctor_names_a_waiting_trigger_without_triggerer_and_a_blocking_one(settings: Settings, db: Database) -> None:
    """``headrace doctor``'s triggerer findings from the rows a triggerer writes (no process needed)."""
    from datetime import UTC, datetime

    from headrace.doctor.triggerer import triggerer_findings

    now = datetime.now(UTC)
    with db.session() as session:
        session.add(Trigger(classpath="headrace.triggers.DateTimeTrigger", kwargs="{}", created_date=now))
        session.add(
            TriggererJob(
                hostname="h",
                pid=1,
                started_at=now,
                heartbeat_at=now,
                ended_at=now,
                capacity=10,
                triggers_running=0,
                blocked_at=now,
                blocked_seconds=1.5,
                blocked_trigger_id=3,
                blocked_detail="trigger 3 (SleepyTrigger for d.t run r try 1) in run at x.py:9",
            )
        )
    findings = triggerer_findings(settings, db, now, 24)
    titles = [f.title for f in findings]
    assert [f.severity.value for f in findings] == ["warning", "warning"], titles
    assert "no triggerer is alive" in titles[0]
    assert "SleepyTrigger" in titles[1] and "1.50 s" in titles[1]


def test_standalone_runs_a_triggerer_only_while_a_trigger_exists(settings: Settings, db: Database) -> None:
    """``headrace standalone``'s keeper: no process at rest; a trigger row starts ``headrace triggerer``, which
    (the trigger awaited by nobody) removes it and exits by itself after ``triggerer.idle_timeout``."""
    from datetime import UTC, datetime

    from headrace.db.migrate import migrate
    from headrace.triggerer.keeper import TriggererKeeper

    migrate(db)
    settings = settings.with_overrides({**DEFER_FAST, "triggerer": {**DEFER_FAST["triggerer"], "idle_timeout": 0.5}})
    keeper = TriggererKeeper(settings, db)
    try:
        keeper(datetime.now(UTC))
        assert keeper.child is None and keeper.started == 0  # at rest: no triggerer process
        with db.session() as session:
            session.add(
                Trigger(classpath="headrace.triggers.DateTimeTrigger", kwargs="{}", created_date=datetime.now(UTC))
            )
        keeper._next_check = 0.0
        keeper(datetime.now(UTC))
        assert keeper.child is not None and keeper.started == 1
        child = keeper.child

        def exited() -> bool:
            keeper(datetime.now(UTC))
            return keeper.child is None

        wait_until(exited, 60, "the idle triggerer to exit", interval=0.1)
        assert child.returncode == 0
        assert _scalar(db, select(func.count()).select_from(Trigger)) == 0
        keeper._next_check = 0.0
        keeper(datetime.now(UTC))
        assert keeper.child is None and keeper.started == 1  # nothing to wait for: none started again
    finally:
        keeper.close()


def test_trigger_dag_run_deferrable_waits_in_the_triggerer(
    settings: Settings, db: Database, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    settings = settings.with_overrides(DEFER_FAST)
    write_dag(
        settings,
        "parent_child.py",
        """
import time
from headrace import DAG
from headrace.operators import PythonOperator, TriggerDagRunOperator
with DAG("child"):
    PythonOperator(task_id="work", python_callable=lambda: time.sleep(1))
with DAG("parent"):
    TriggerDagRunOperator(task_id="run_child", trigger_dag_id="child", wait_for_completion=True, deferrable=True,
                          poke_interval=0.2)
""",
    )
    parse_and_trigger(settings, db, "parent")
    start_triggerer()
    run_scheduler_until_done(settings, db, timeout=120)
    with db.session() as session:
        from headrace.db.models import DagRun

        states = {r.dag_id: r.state for r in session.scalars(select(DagRun))}
    assert states == {"parent": "success", "child": "success"}
    assert tries_per_ti(db) == {"run_child": [1], "work": [1]}
    log = _try_log(db, "run_child")
    assert "deferring to headrace.triggers.DagStateTrigger" in log and "finished with allowed state success" in log
