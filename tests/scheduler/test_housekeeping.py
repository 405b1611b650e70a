"""Housekeeping: zombies, stuck-in-queued, adoption at start, and the drift-safe chore runner."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta

import psutil
import pytest

from headrace import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.housekeeping import (
    Chore,
    Housekeeping,
    adopt_or_fail_tries,
    end_exited_try,
    find_zombies,
    requeue_stuck,
)
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.identity import hostname

from .conftest import NOW, move_ti, store_dags, tis


@pytest.fixture
def dead_pid() -> tuple[int, float]:
    """(pid, create time) of a process that has exited."""
    proc = subprocess.Popen(["sleep", "60"])
    start = psutil.Process(proc.pid).create_time()
    proc.kill()
    proc.wait()
    return proc.pid, start


def setup_run(settings: Settings, db: Database, retries: int = 1) -> None:
    with DAG("hk") as dag:
        EmptyOperator(task_id="t", retries=retries, retry_delay=timedelta(seconds=60))
        EmptyOperator(task_id="u")
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, "hk", now=NOW)
        start_queued_runs(session, NOW)


def add_try(
    db: Database, task_id: str, *, pid: int, start_time: float, host: str | None = None, heartbeat: datetime = NOW
) -> None:
    """Claim the queued try of ``task_id`` as a supervisor would."""
    ti = tis(db)[task_id]
    move_ti(db, ti.id, TI.RUNNING)
    with db.session() as session:
        session.add(
            TaskTry(
                task_instance_id=ti.id,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=task_id,
                try_number=ti.try_number + (1 if ti.state != "running" else 0),
                state="running",
                hostname=host or hostname(),
                supervisor_pid=pid,
                supervisor_start_time=start_time,
                start_date=NOW,
                heartbeat_at=heartbeat,
                log_path="/dev/null",
            )
        )


def the_try(db: Database, task_id: str) -> TaskTry:
    with db.session() as session:
        from sqlalchemy import select

        return session.scalars(select(TaskTry).where(TaskTry.task_id == task_id)).one()


def test_dead_supervisor_is_a_zombie_and_retried(settings: Settings, db: Database, dead_pid: tuple[int, float]) -> None:
    setup_run(settings, db, retries=1)
    add_try(db, "t", pid=dead_pid[0], start_time=dead_pid[1])
    me = psutil.Process(os.getpid())
    add_try(db, "u", pid=me.pid, start_time=me.create_time())
    assert find_zombies(db, NOW, threshold=60, cache=DagCache()) == 1
    t, u = tis(db)["t"], tis(db)["u"]
    assert (t.state, t.end_reason, t.next_retry_at) == ("up_for_retry", "zombie", NOW + timedelta(seconds=60))
    assert u.state == "running"
    tt = the_try(db, "t")
    assert (tt.end_reason, tt.end_date, tt.state) == ("zombie", NOW, "up_for_retry")
    assert find_zombies(db, NOW, threshold=60, cache=DagCache()) == 0  # nothing twice


def test_zombie_without_retries_left_fails(settings: Settings, db: Database, dead_pid: tuple[int, float]) -> None:
    setup_run(settings, db, retries=0)
    add_try(db, "t", pid=dead_pid[0], start_time=dead_pid[1])
    assert find_zombies(db, NOW, threshold=60, cache=DagCache()) == 1
    assert tis(db)["t"].state == "failed"


def test_reused_pid_is_not_mistaken_for_the_supervisor(settings: Settings, db: Database) -> None:
    setup_run(settings, db)
    me = psutil.Process(os.getpid())
    add_try(db, "t", pid=me.pid, start_time=me.create_time() - 100)  # same pid, other process
    assert find_zombies(db, NOW, threshold=60, cache=DagCache()) == 1


def test_remote_try_is_a_zombie_only_when_its_heartbeat_is_old(settings: Settings, db: Database) -> None:
    setup_run(settings, db)
    add_try(db, "t", pid=1, start_time=1.0, host="elsewhere.example", heartbeat=NOW)
    assert find_zombies(db, NOW + timedelta(seconds=59), threshold=60, cache=DagCache()) == 0
    assert find_zombies(db, NOW + timedelta(seconds=61), threshold=60, cache=DagCache()) == 1


def test_requeue_stuck(settings: Settings, db: Database) -> None:
    setup_run(settings, db)
    move_ti(db, tis(db)["t"].id, TI.QUEUED, queued_at=NOW)
    assert requeue_stuck(db, NOW + timedelta(seconds=599), timeout=600) == 0
    assert requeue_stuck(db, NOW + timedelta(seconds=601), timeout=600) == 1
    t = tis(db)["t"]
    assert (t.state, t.try_number, t.queued_at) == ("scheduled", 0, None)


def test_queued_with_a_try_row_is_not_requeued(settings: Settings, db: Database) -> None:
    setup_run(settings, db)
    ti = tis(db)["t"]
    move_ti(db, ti.id, TI.QUEUED, queued_at=NOW)
    with db.session() as session:  # a supervisor inserted its row but has not moved the TI yet
        session.add(
            TaskTry(
                task_instance_id=ti.id,
                dag_id="hk",
                run_id=ti.run_id,
                task_id="t",
                try_number=1,
                state="running",
                hostname=hostname(),
                supervisor_pid=1,
                supervisor_start_time=1.0,
                start_date=NOW,
                heartbeat_at=NOW,
                log_path="/dev/null",
            )
        )
    assert requeue_stuck(db, NOW + timedelta(hours=1), timeout=600) == 0


def test_adopt_or_fail_tries(settings: Settings, db: Database, dead_pid: tuple[int, float]) -> None:
    with DAG("hk") as dag:
        for t in ("alive", "dead", "queued", "remote"):
            EmptyOperator(task_id=t)
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, "hk", now=NOW)
        start_queued_runs(session, NOW)
    me = psutil.Process(os.getpid())
    add_try(db, "alive", pid=me.pid, start_time=me.create_time())
    add_try(db, "dead", pid=dead_pid[0], start_time=dead_pid[1])
    add_try(db, "remote", pid=1, start_time=1.0, host="elsewhere.example")
    move_ti(db, tis(db)["queued"].id, TI.QUEUED, queued_at=NOW)
    stats = adopt_or_fail_tries(db, NOW, cache=DagCache())
    assert (stats.adopted, stats.zombies, stats.requeued) == (1, 1, 1)
    states = {t: ti.state for t, ti in tis(db).items()}
    assert states == {"alive": "running", "dead": "failed", "queued": "scheduled", "remote": "running"}


def test_supervisor_exit_ends_an_open_try(settings: Settings, db: Database) -> None:
    setup_run(settings, db, retries=0)
    ti = tis(db)["t"]
    move_ti(db, ti.id, TI.QUEUED, queued_at=NOW)
    assert not end_exited_try(db, NOW, ti.id, 2, cache=DagCache(), exit_code=1)  # another try: ignored
    assert end_exited_try(db, NOW, ti.id, 1, cache=DagCache(), exit_code=1)
    assert tis(db)["t"].state == "failed"
    assert not end_exited_try(db, NOW, ti.id, 1, cache=DagCache(), exit_code=1)


def test_housekeeping_runs_chores_when_due_without_drift() -> None:
    calls: list[tuple[str, datetime]] = []
    hk = Housekeeping(
        [
            Chore("fast", 10, lambda now: calls.append(("fast", now)) or 1),
            Chore("slow", 60, lambda now: calls.append(("slow", now)) or 1),
        ]
    )
    assert hk.run_due(NOW) == 2
    assert hk.run_due(NOW + timedelta(seconds=5)) == 0
    assert hk.run_due(NOW + timedelta(seconds=10)) == 1
    assert hk.next_due() == NOW + timedelta(seconds=20)
    # a long pause: each chore runs once, then keeps its rhythm from now
    assert hk.run_due(NOW + timedelta(seconds=300)) == 2
    assert hk.next_due() == NOW + timedelta(seconds=310)
    assert [name for name, _ in calls] == ["fast", "slow", "fast", "fast", "slow"]


def test_failing_chore_does_not_stop_the_others() -> None:
    def boom(_now: datetime) -> int:
        raise RuntimeError("db down")

    hk = Housekeeping([Chore("boom", 1, boom), Chore("ok", 1, lambda now: 1)])
    assert hk.run_due(NOW) == 1
