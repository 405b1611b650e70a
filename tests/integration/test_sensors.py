"""Sensors through the scheduler (LocalExecutor, real supervisors), on SQLite and PostgreSQL.

Reschedule mode: the try's process ends between pokes (``up_for_reschedule``, one ``task_reschedule`` row per
unmet poke, the same ``try_number``), the scheduler wakes for the next poke at its ``reschedule_date``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskReschedule, TaskTry, XCom

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
    run_scheduler_until_done(settings, db)
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

