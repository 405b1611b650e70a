"""dagrun_timeout: a running DAG run older than its timeout fails, its running tries are stopped."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import psutil
from sqlalchemy import select

from headrace.authoring.dag import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskTry
from headrace.executors import make_executor
from headrace.operators import EmptyOperator
from headrace.scheduler import loop
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.runs import enforce_dagrun_timeouts, start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.identity import hostname

from tests.integration.helpers import FAST, parse_and_trigger, write_dag
from .conftest import NOW, move_ti, runs, store_dags, tis


def started_run(settings: Settings, db: Database, dag: DAG) -> DagRun:
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, dag.dag_id, now=NOW, run_id=f"manual_{dag.dag_id}")
        assert start_queued_runs(session, NOW) == 1
    [run] = [r for r in runs(db) if r.dag_id == dag.dag_id]
    return run


def enforce(db: Database, now: datetime, cache: DagCache, seen: list[str] | None = None) -> int:
    with db.session() as session:
        return enforce_dagrun_timeouts(session, now, cache=cache,
                                       on_finished=None if seen is None else lambda r, s: seen.append(s.value))


def test_a_run_past_its_timeout_fails_its_running_tries_and_skips_the_rest(settings: Settings, db: Database) -> None:
    with DAG("slow", dagrun_timeout=60) as dag:
        EmptyOperator(task_id="done") >> EmptyOperator(task_id="running")
        EmptyOperator(task_id="queued")
        EmptyOperator(task_id="scheduled")
        EmptyOperator(task_id="waiting")
        EmptyOperator(task_id="retry")
    run = started_run(settings, db, dag)
    with DAG("patient") as other:  # no dagrun_timeout: never timed out
        EmptyOperator(task_id="running")
    other_run = started_run(settings, db, other)
    ids = {t: ti.id for t, ti in tis(db, run.run_id).items()}
    move_ti(db, ids["done"], TI.SUCCESS)
    move_ti(db, ids["queued"], TI.QUEUED)
    move_ti(db, ids["scheduled"], TI.SCHEDULED)
    move_ti(db, ids["retry"], TI.UP_FOR_RETRY, next_retry_at=NOW + timedelta(hours=1))
    for ti_id in (ids["running"], tis(db, other_run.run_id)["running"].id):
        move_ti(db, ti_id, TI.RUNNING)
    with db.session() as session:
        session.add(TaskTry(task_instance_id=ids["running"], dag_id="slow", run_id=run.run_id, task_id="running",
                            try_number=1, state="running", hostname=hostname(), supervisor_pid=1,
                            supervisor_start_time=1.0, start_date=NOW, heartbeat_at=NOW, log_path="/dev/null"))
    cache = DagCache()
    assert enforce(db, NOW + timedelta(seconds=59), cache) == 0
    seen: list[str] = []
    assert enforce(db, NOW + timedelta(seconds=61), cache, seen) == 1
    assert seen == ["failed"]
    later = NOW + timedelta(seconds=61)
    by_id = {r.run_id: r for r in runs(db)}
    assert by_id[run.run_id].state == "failed" and by_id[run.run_id].end_date == later
    assert by_id[other_run.run_id].state == "running"
    states = {t: (ti.state, ti.end_reason) for t, ti in tis(db, run.run_id).items()}
    assert states == {
        "done": ("success", None),
        "running": ("failed", "dagrun_timeout"),
        "queued": ("skipped", "dagrun_timeout"),
        "scheduled": ("skipped", "dagrun_timeout"),
        "waiting": ("skipped", "dagrun_timeout"),
        "retry": ("skipped", "dagrun_timeout"),
    }
    with db.session() as session:
        tt = session.scalars(select(TaskTry).where(TaskTry.task_id == "running", TaskTry.dag_id == "slow")).one()
        assert (tt.state, tt.end_reason, tt.end_date) == ("failed", "dagrun_timeout", later)
        assert tt.error == f"DAG run {run.run_id} of slow ran longer than its dagrun_timeout of 60 s"
    assert enforce(db, NOW + timedelta(hours=1), cache) == 0  # once


BASH_SLEEP = """
from headrace import DAG
from headrace.operators import BashOperator

with DAG("sleepy", dagrun_timeout=1.5):
    BashOperator(task_id="nap", bash_command="sleep 60")
"""


def test_a_real_supervisor_stops_a_try_of_a_timed_out_run(settings: Settings, db: Database) -> None:
    """Through the real loop, executor and supervisor: the task's process is gone soon after the run failed."""
    settings = settings.with_overrides(FAST)
    write_dag(settings, "sleepy.py", BASH_SLEEP)
    parse_and_trigger(settings, db, "sleepy")
    cache = DagCache()
    stop = threading.Event()
    pids: list[int] = []

    def after_loop(now: datetime) -> None:  # until the lead wires it in as a housekeeping chore
        with db.session() as session:
            tt = session.scalars(select(TaskTry)).first()
        if tt is not None and tt.pid and not pids:
            pids.append(tt.pid)
        if pids:  # once the task process runs (a slow start must not make the test skip the task instead)
            enforce(db, now, cache)
        with db.session() as session:
            run = session.scalars(select(DagRun)).one()
        if run.state == "failed" and pids and not psutil.pid_exists(pids[0]):
            stop.set()

    timer = threading.Timer(30, stop.set)
    timer.start()
    began = time.monotonic()
    try:
        loop.run(settings, db, make_executor(settings), stop=stop, after_loop=after_loop)
    finally:
        timer.cancel()
    assert time.monotonic() - began < 25, "the try's process was not stopped"
    [run] = runs(db)
    assert run.state == "failed" and run.start_date is not None and run.end_date is not None
    assert run.end_date - run.start_date >= timedelta(seconds=1.5)
    [ti] = tis(db).values()
    assert (ti.state, ti.end_reason) == ("failed", "dagrun_timeout")
    with db.session() as session:
        tt = session.scalars(select(TaskTry)).one()
    assert (tt.state, tt.end_reason) == ("failed", "dagrun_timeout")
    assert not psutil.pid_exists(pids[0]) and pids[0] != os.getpid()
    assert datetime.now(UTC) - tt.start_date < timedelta(seconds=30)
