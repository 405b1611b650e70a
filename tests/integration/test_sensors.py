"""Sensors through the scheduler (LocalExecutor, real supervisors), on SQLite and PostgreSQL.

Reschedule mode: the try's process ends between pokes (``up_for_reschedule``, one ``task_reschedule`` row per
unmet poke, the same ``try_number``), the scheduler wakes for the next poke at its ``reschedule_date``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.authoring.secrets import Connection
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, TaskReschedule, TaskTry, XCom
from headrace.secrets_store import set_connection

from .helpers import FAST, parse_and_trigger, run_scheduler_until_done, run_states, ti_states, tries_per_ti, write_dag

# A callable that is done at its n-th poke: it counts its pokes in a file (each poke may be a new process).
COUNTING = """
import json, os
from pathlib import Path

def done_at(counter, n, value=None):
    path = Path(counter)
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count >= n
"""


def _reschedules(db: Database, task_id: str) -> list[TaskReschedule]:
    with db.session() as session:
        rows = session.scalars(
            select(TaskReschedule).where(TaskReschedule.task_id == task_id).order_by(TaskReschedule.id)
        ).all()
        session.expunge_all()
        return list(rows)


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_python_sensor_waits_then_succeeds(settings: Settings, db: Database, tmp_path: Path, mode: str) -> None:
    settings = settings.with_overrides(FAST)
    counter = tmp_path / "pokes"
    write_dag(
        settings,
        "sense.py",
        COUNTING
        + f"""
from headrace import DAG
from headrace.operators import PythonOperator
from headrace.sensors import PythonSensor

with DAG("sense"):
    s = PythonSensor(task_id="wait", python_callable=done_at, op_args=[{str(counter)!r}, 3],
                     poke_interval=0.2, mode={mode!r})
    s >> PythonOperator(task_id="after", python_callable=lambda: "ok")
""",
    )
    run_id = parse_and_trigger(settings, db, "sense")
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "success"}
    assert ti_states(db) == {"wait": "success", "after": "success"}
    assert counter.read_text() == "3"
    assert tries_per_ti(db) == {"wait": [1], "after": [1]}  # the pokes are one try
    rows = _reschedules(db, "wait")
    if mode == "poke":
        assert rows == []
        return
    assert [r.try_number for r in rows] == [1, 1]  # one row per unmet poke
    for row in rows:
        assert row.start_date <= row.end_date <= row.reschedule_date
    assert rows[0].end_date <= rows[1].start_date  # a new process for each poke
    with db.session() as session:
        ti = session.scalars(select(TaskInstance).where(TaskInstance.task_id == "wait")).one()
        assert (ti.try_number, ti.reschedule_date) == (1, None)
        tt = session.scalars(select(TaskTry).where(TaskTry.task_id == "wait")).one()
        assert (tt.state, tt.end_reason) == ("success", "success")


def test_reschedule_frees_the_slot_for_another_task(settings: Settings, db: Database, tmp_path: Path) -> None:
    """With parallelism 1 a poke-mode sensor would hold the only slot; in reschedule mode the producer runs
    between two pokes of the sensor, in the slot the sensor gave back."""
    settings = settings.with_overrides({**FAST, "core": {**FAST["core"], "parallelism": 1}})
    landed = tmp_path / "landed.csv"
    write_dag(
        settings,
        "slot.py",
        f"""
from pathlib import Path
from headrace import DAG
from headrace.operators import PythonOperator
from headrace.sensors import FileSensor

with DAG("slot"):
    FileSensor(task_id="wait", filepath={str(landed)!r}, poke_interval=0.2, mode="reschedule", priority_weight=10)
    PythonOperator(task_id="produce", python_callable=lambda: Path({str(landed)!r}).write_text("x"))
""",
    )
    run_id = parse_and_trigger(settings, db, "slot")
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "success"}
    assert tries_per_ti(db) == {"wait": [1], "produce": [1]}
    rows = _reschedules(db, "wait")
    assert rows, "the sensor never gave its slot back"
    with db.session() as session:
        produce = session.scalars(select(TaskTry).where(TaskTry.task_id == "produce")).one()
        wait = session.scalars(select(TaskTry).where(TaskTry.task_id == "wait")).one()
        # produce ran while the sensor had no process: after the sensor's first poke ended, before its last began
        assert rows[0].end_date <= produce.start_date
        assert produce.end_date is not None and wait.end_date is not None
        assert produce.end_date <= wait.end_date


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_timeout_fails_without_retries_and_soft_fail_skips(settings: Settings, db: Database, mode: str) -> None:
    settings = settings.with_overrides(FAST)
    write_dag(
        settings,
        "timeout.py",
        f"""
from headrace import DAG
from headrace.operators import EmptyOperator
from headrace.sensors import PythonSensor

with DAG("timeout"):
    hard = PythonSensor(task_id="hard", python_callable=lambda: False, poke_interval=0.3, timeout=1,
                        mode={mode!r}, retries=2, retry_delay=0)
    soft = PythonSensor(task_id="soft", python_callable=lambda: False, poke_interval=0.3, timeout=1,
                        mode={mode!r}, soft_fail=True, retries=2, retry_delay=0)
    hard >> EmptyOperator(task_id="after_hard")
    soft >> EmptyOperator(task_id="after_soft")
""",
    )
    run_id = parse_and_trigger(settings, db, "timeout")
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "failed"}
    assert ti_states(db) == {
        "hard": "failed",
        "soft": "skipped",
        "after_hard": "upstream_failed",
        "after_soft": "skipped",
    }
    assert tries_per_ti(db) == {"hard": [1], "soft": [1]}  # a sensor's timeout uses no retry
    with db.session() as session:
        hard = session.scalars(select(TaskTry).where(TaskTry.task_id == "hard")).one()
        assert hard.error is not None and "SensorTimeout: Sensor has timed out" in hard.error
    if mode == "reschedule":  # several pokes, one try, the timeout counted from the first poke's start
        rows = _reschedules(db, "hard")
        assert rows and hard.end_date is not None
        assert (hard.end_date - rows[0].start_date).total_seconds() > 1


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_task_sensor_poke_return_value_is_the_xcom(settings: Settings, db: Database, tmp_path: Path, mode: str) -> None:
    settings = settings.with_overrides(FAST)
    counter = tmp_path / "pokes"
    out = tmp_path / "out.txt"
    write_dag(
        settings,
        "xcom_sensor.py",
        COUNTING
        + f"""
from headrace import dag, task, PokeReturnValue

@dag
def xcom_sensor():
    @task.sensor(poke_interval=0.2, mode={mode!r})
    def wait_for_rows() -> PokeReturnValue:
        done = done_at({str(counter)!r}, 2)
        return PokeReturnValue(is_done=done, xcom_value={{"rows": 42}} if done else None)

    @task
    def use(found):
        Path({str(out)!r}).write_text(str(found["rows"]))

    use(wait_for_rows())

xcom_sensor()
""",
    )
    run_id = parse_and_trigger(settings, db, "xcom_sensor")
    run_scheduler_until_done(settings, db, timeout=120)
    assert run_states(db) == {run_id: "success"}
    assert out.read_text() == "42"
    with db.session() as session:
        value = session.scalars(select(XCom.value).where(XCom.task_id == "wait_for_rows")).one()
    assert json.loads(value) == {"rows": 42}
    assert len(_reschedules(db, "wait_for_rows")) == (1 if mode == "reschedule" else 0)


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_standard_sensors_wait_then_succeed(settings: Settings, db: Database, tmp_path: Path, mode: str) -> None:
    """FileSensor (a glob, ``recursive``, under its connection's base path), BashSensor, TimeSensor,
    TimeDeltaSensor, DateTimeSensor (a template) and DayOfWeekSensor: the file lands ~2 s after the run
    starts; the time sensors wait for 3 s after the run's data interval end (TimeDeltaSensor, DateTimeSensor by
    a template) and 5 s after the test began (TimeSensor): each succeeds only after its time. (Whether they poke
    more than once depends on how long the scheduler took to start their first poke.)"""
    settings = settings.with_overrides(FAST)
    base = tmp_path / "landing"
    base.mkdir()
    enc = Encryptor.from_settings(settings)
    with db.session() as session:
        set_connection(session, enc, Connection(conn_id="landing", conn_type="fs", extra={"path": str(base)}))
    soon = datetime.now(UTC) + timedelta(seconds=5)
    today = soon.strftime("%A")
    write_dag(
        settings,
        "standard.py",
        f"""
import time
from datetime import time as clock
from pathlib import Path
from headrace import DAG
from headrace.operators import PythonOperator
from headrace.sensors import (BashSensor, DateTimeSensor, DayOfWeekSensor, FileSensor, TimeDeltaSensor,
                              TimeSensor, WeekDay)

def land():
    time.sleep(2)
    nested = Path({str(base)!r}) / "2026" / "12"
    nested.mkdir(parents=True)
    (nested / "rows.csv").write_text("a,b")

args = dict(poke_interval=1, mode={mode!r}, timeout=120)
with DAG("standard"):
    PythonOperator(task_id="land", python_callable=land)
    FileSensor(task_id="file", fs_conn_id="landing", filepath="**/*.csv", recursive=True, **args)
    BashSensor(task_id="bash", bash_command="ls {base}/2026/12/rows.csv", **args)
    TimeSensor(task_id="time", target_time=clock({soon.hour}, {soon.minute}, {soon.second}, {soon.microsecond}),
               **args)
    TimeDeltaSensor(task_id="time_delta", delta=3, **args)
    DateTimeSensor(task_id="date_time", target_time="{{{{ (data_interval_end + macros.timedelta(seconds=3)).isoformat() }}}}",
                   **args)
    DayOfWeekSensor(task_id="weekday", week_day={{{today!r}, WeekDay.SUNDAY}}, **args)
""",
    )
    run_id = parse_and_trigger(settings, db, "standard")
    run_scheduler_until_done(settings, db, timeout=120)
    with db.session() as session:
        dump = [(t.task_id, t.state, t.end_reason, t.error) for t in session.scalars(select(TaskTry))]
    assert run_states(db) == {run_id: "success"}, dump
    waited = ("file", "bash")
    timed = ("time", "time_delta", "date_time")
    assert tries_per_ti(db) == {t: [1] for t in ("land", *waited, *timed, "weekday")}
    with db.session() as session:
        interval_end = session.scalars(select(DagRun.data_interval_end)).one()
        ended = {ti.task_id: ti.end_date for ti in session.scalars(select(TaskInstance))}
    assert ended["time"] > soon.replace(microsecond=0)
    assert interval_end is not None
    assert ended["time_delta"] > interval_end + timedelta(seconds=3)
    assert ended["date_time"] > interval_end + timedelta(seconds=3)
    rescheduled = {t: len(_reschedules(db, t)) for t in waited}
    if mode == "poke":
        assert set(rescheduled.values()) == {0}
    else:
        assert all(n >= 1 for n in rescheduled.values()), rescheduled


def test_file_sensor_glob_is_not_recursive_by_default(settings: Settings, db: Database, tmp_path: Path) -> None:
    """``**`` matches one level without ``recursive`` (Python's glob): a file two levels down is not found."""
    settings = settings.with_overrides(FAST)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "rows.csv").write_text("x")
    write_dag(
        settings,
        "flat.py",
        f"""
from headrace import DAG
from headrace.sensors import FileSensor

with DAG("flat"):
    FileSensor(task_id="flat", filepath={str(tmp_path / "**" / "*.csv")!r}, poke_interval=0.2, timeout=0.5,
               soft_fail=True)
    FileSensor(task_id="deep", filepath={str(tmp_path / "**" / "*.csv")!r}, recursive=True, poke_interval=0.2)
""",
    )
    parse_and_trigger(settings, db, "flat")
    run_scheduler_until_done(settings, db, timeout=120)
    assert ti_states(db) == {"flat": "skipped", "deep": "success"}
