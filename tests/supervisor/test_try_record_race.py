"""The zombie check and a late supervisor race to end the same try: the first writer decides, on both DBs.

The try rows and the task instance must agree whichever comes first
(issue 7): the supervisor's outcome (``outcome.apply``) and the zombie path
(``housekeeping.end_try_as_zombie``) both close the ``task_try`` row only
through ``transitions.end_try`` (``WHERE end_date IS NULL``), after the task
instance's compare-and-set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry
from headrace.db.transitions import set_ti_state
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.housekeeping import end_try_as_zombie
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.recording import Outcome, apply
from tests.supervisor.tryrows import make_try, ti_row, try_row, write_dag


def running_try(db: Database, tmp_path: Path) -> tuple[int, int]:
    """A task instance running try 1 with its open ``task_try`` row (no process); ``(ti_id, row_id)``."""
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("race"):
            BashOperator(task_id="t", bash_command="true", retries=1)
    """,
    )
    request = make_try(db, dag_file, "race", "t")
    now = datetime.now(UTC)
    with db.session() as session:
        assert set_ti_state(session, request.ti_id, TI.QUEUED, TI.RUNNING, expected_try_number=1, start_date=now)
        row = TaskTry(
            task_instance_id=request.ti_id,
            dag_id="race",
            run_id=request.run_id,
            task_id="t",
            try_number=1,
            state="running",
            hostname="elsewhere",
            supervisor_pid=1,
            supervisor_start_time=0.0,
            start_date=now,
            heartbeat_at=now,
            log_path="-",
        )
        session.add(row)
        session.flush()
        return request.ti_id, row.id


def success(ti_id: int, row_id: int, when: datetime) -> Outcome:
    return Outcome(
        ti_id=ti_id,
        try_number=1,
        try_row_id=row_id,
        state="success",
        try_state="success",
        end_date=when,
        end_reason="success",
        exit_code=0,
    )


def read_running(db: Database, ti_id: int, row_id: int) -> tuple[TaskInstance, TaskTry]:
    """What the zombie check read: the task instance and its try row, detached."""
    with db.read_session() as session:
        ti, tt = session.get(TaskInstance, ti_id), session.get(TaskTry, row_id)
        assert ti is not None and tt is not None and ti.state == "running"
        session.expunge_all()
        return ti, tt


def zombie(db: Database, seen: tuple[TaskInstance, TaskTry]) -> bool:
    """The zombie check ends the try it read as running (whatever happened since)."""
    with db.session() as session:
        return end_try_as_zombie(
            session, seen[0], seen[1], datetime.now(UTC), DagCache(), why="test: heartbeat stopped"
        )


def test_zombie_first_then_late_supervisor(db: Database, settings: Settings, tmp_path: Path) -> None:
    ti_id, row_id = running_try(db, tmp_path)
    assert zombie(db, read_running(db, ti_id, row_id))
    with db.engine.begin() as conn:
        assert apply(conn, success(ti_id, row_id, datetime.now(UTC))) is False
    ti, tt = ti_row(db, ti_id), try_row(db, ti_id, 1)
    assert tt is not None
    assert (ti.state, ti.end_reason) == ("up_for_retry", "zombie")
    assert (tt.state, tt.end_reason) == ("up_for_retry", "zombie")  # the late success did not rewrite it


def test_supervisor_first_then_zombie_check(db: Database, settings: Settings, tmp_path: Path) -> None:
    ti_id, row_id = running_try(db, tmp_path)
    seen = read_running(db, ti_id, row_id)  # the zombie check read it running, then the supervisor committed
    with db.engine.begin() as conn:
        assert apply(conn, success(ti_id, row_id, datetime.now(UTC)))
    assert not zombie(db, seen)
    ti, tt = ti_row(db, ti_id), try_row(db, ti_id, 1)
    assert tt is not None
    assert (ti.state, ti.end_reason) == ("success", "success")
    assert (tt.state, tt.end_reason, tt.exit_code) == ("success", "success", 0)


def test_user_moved_it_on_the_late_outcome_is_recorded_as_lost_race(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    ti_id, row_id = running_try(db, tmp_path)
    with db.session() as session:  # someone else ended the task instance without closing the try row
        assert set_ti_state(session, ti_id, TI.RUNNING, TI.FAILED, expected_try_number=1)
    with db.engine.begin() as conn:
        assert apply(conn, success(ti_id, row_id, datetime.now(UTC))) is False
    ti, tt = ti_row(db, ti_id), try_row(db, ti_id, 1)
    assert tt is not None
    assert ti.state == "failed"
    assert tt.end_reason == "lost_race" and "came after the task instance had been moved on" in (tt.error or "")


def test_outcome_written_again_after_a_lost_commit_answer_counts_as_won(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    ti_id, row_id = running_try(db, tmp_path)
    outcome = success(ti_id, row_id, datetime.now(UTC) - timedelta(seconds=1))
    with db.engine.begin() as conn:
        assert apply(conn, outcome)
    with db.engine.begin() as conn:  # the supervisor retries: it never saw the COMMIT's answer
        assert apply(conn, outcome)
    tt = try_row(db, ti_id, 1)
    assert tt is not None and tt.end_reason == "success"
