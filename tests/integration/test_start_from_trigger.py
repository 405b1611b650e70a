"""Tasks that start in the triggerer (``start_from_trigger``) through the scheduler (LocalExecutor, real
supervisors) and a real triggerer, on SQLite and PostgreSQL: the scheduler defers a new try itself, so no task
process exists until the trigger fires; templated trigger kwargs; the timeout, retried (each try starts in the
triggerer again, ``try_number`` counting them); a template that does not render fails the try."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry, XCom
from headrace.testing import run_scheduler_until

from .helpers import DEFER_FAST, parse_and_trigger, run_states, ti_states, tries_per_ti, write_dag

TRIGGERS = """
import asyncio
from headrace.triggers import BaseTrigger, TriggerEvent

class EchoTrigger(BaseTrigger):
    def __init__(self, seconds, label):
        super().__init__()
        self.seconds, self.label = seconds, label
    def serialize(self):
        return "start_triggers.EchoTrigger", {"seconds": self.seconds, "label": self.label}
    async def run(self):
        await asyncio.sleep(self.seconds)
        yield TriggerEvent(self.label)
"""

DAG_FILE = """
from datetime import UTC, datetime, timedelta
from headrace import DAG
from headrace import BaseOperator
from headrace.triggers import StartTriggerArgs

class StartsWaiting(BaseOperator):
    start_trigger_args = StartTriggerArgs(
        trigger_cls="start_triggers.EchoTrigger",
        trigger_kwargs={"seconds": 1.5, "label": "{{ run_id }}|{{ params.who }}|{{ try_number }}"},
        next_method="finish",
        next_kwargs={"extra": 7},
    )
    start_from_trigger = True

    def __init__(self, *, label=None, timeout=None, **kwargs):
        super().__init__(**kwargs)
        if label is not None:  # set on the instance: only this task's copy changes
            self.start_trigger_args.trigger_kwargs["label"] = label
        if timeout is not None:
            self.start_trigger_args.trigger_kwargs["seconds"] = 3600
            self.start_trigger_args.timeout = timeout

    def execute(self, context):
        raise AssertionError("execute must not run: the task starts in the triggerer")

    def finish(self, context, event=None, extra=None):
        return {"event": event, "extra": extra, "try": context["ti"].try_number}

with DAG("starts", params={"who": "world"}):
    StartsWaiting(task_id="starts")
    StartsWaiting(task_id="times_out", timeout=timedelta(seconds=1), retries=1, retry_delay=0)
    StartsWaiting(task_id="bad_template", label="{{ no_such_key }}")
"""


def test_a_task_starts_in_the_triggerer_with_no_process_until_the_event(
    settings: Settings, db: Database, start_triggerer: Callable[[], subprocess.Popen[bytes]]
) -> None:
    settings = settings.with_overrides(DEFER_FAST)
    write_dag(settings, "start_triggers.py", TRIGGERS)
    write_dag(settings, "starts.py", DAG_FILE)
    run_id = parse_and_trigger(settings, db, "starts")
    start_triggerer()
    seen: dict[str, tuple[int, str, int | None, int]] = {}

    def look(_now: object) -> None:
        """While "starts" waits, its try row: no host, no process (nothing ran yet)."""
        with db.session() as session:
            ti = session.scalars(select(TaskInstance).where(TaskInstance.task_id == "starts")).one()
            row = session.scalars(select(TaskTry).where(TaskTry.task_id == "starts")).one_or_none()
        if ti.state == "deferred" and row is not None and "starts" not in seen:
            seen["starts"] = (ti.try_number, row.hostname, row.pid, row.supervisor_pid)

    def done() -> bool:
        return set(run_states(db).values()) <= {"success", "failed"}

    assert run_scheduler_until(settings, db, done, each_loop=look, timeout=60)
    assert seen["starts"] == (1, "", None, 0)  # deferred as try 1 by the scheduler: no supervisor, no process
    assert run_states(db) == {run_id: "failed"}
    assert ti_states(db) == {"starts": "success", "times_out": "failed", "bad_template": "failed"}
    # each try is one try row; a retry starts in the triggerer again, as try 2
    assert tries_per_ti(db) == {"starts": [1], "times_out": [1, 2], "bad_template": [1]}
    with db.session() as session:
        result = session.scalar(select(XCom.value).where(XCom.task_id == "starts", XCom.key == "return_value"))
        tries = {(t.task_id, t.try_number): t for t in session.scalars(select(TaskTry))}
    # the template rendered with the try's context; the event and next_kwargs reached next_method
    assert result is not None and f'"event":"{run_id}|world|1"' in result.replace(" ", "")
    assert '"extra":7' in result.replace(" ", "") and '"try":1' in result.replace(" ", "")
    resumed = tries["starts", 1]
    assert resumed.hostname != "" and resumed.pid is not None and resumed.end_reason == "success"
    log = Path(resumed.log_path).read_text()
    assert "started in the triggerer, with no task process" in log and "fired" in log
    assert "execute must not run" not in log
    for try_number in (1, 2):
        timed_out = tries["times_out", try_number]
        assert timed_out.error is not None and "TaskDeferralTimeout" in timed_out.error
    bad = tries["bad_template", 1]
    assert bad.error is not None and "cannot render start_trigger_args.trigger_kwargs" in bad.error
    assert "no_such_key" in bad.error
