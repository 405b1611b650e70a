"""Run a real scheduler (LocalExecutor, real supervisors) until DAG runs finish."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, TaskTry
from headrace.scheduler.runs import trigger_dag
from headrace.testing import run_scheduler_until

FAST = {
    "scheduler": {"loop_interval": 0.2, "dag_dir_list_interval": 0.5, "heartbeat_interval": 0.5},
    "core": {"executor": "local", "parallelism": 8},
    "executor": {"forkserver_idle_timeout": 5},
}
"""Overrides that keep integration tests quick."""

DEFER_FAST = {
    **FAST,
    "scheduler": {**FAST["scheduler"], "trigger_timeout_check_interval": 0.2},
    "triggerer": {"job_heartbeat_sec": 0.5, "block_threshold": 0.2},
}
"""FAST, and a triggerer and deferral timeouts that react within a second (the ``start_triggerer`` fixture's)."""


def write_dag(settings: Settings, name: str, body: str) -> Path:
    """Write a DAG file into ``core.dags_folder``."""
    path = settings.dags_folder / name
    path.write_text(textwrap.dedent(body))
    return path


def parse_and_trigger(settings: Settings, db: Database, dag_id: str) -> str:
    """Parse the DAGs folder and create a manual run of ``dag_id``; return its run_id."""
    stats = DagProcessor(settings, db).refresh(datetime.now(UTC))
    assert stats.errors == 0, "DAG file failed to import"
    with db.session() as session:
        return trigger_dag(session, dag_id, now=datetime.now(UTC)).run_id


def run_states(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {r.run_id: r.state for r in session.scalars(select(DagRun))}


def ti_states(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {ti.task_id: ti.state for ti in session.scalars(select(TaskInstance))}


def tries_per_ti(db: Database) -> dict[str, list[int]]:
    with db.session() as session:
        out: dict[str, list[int]] = {}
        for tt in session.scalars(select(TaskTry).order_by(TaskTry.try_number)):
            out.setdefault(tt.task_id, []).append(tt.try_number)
        return out


def run_scheduler_until_done(settings: Settings, db: Database, *, timeout: float = 60) -> None:
    """Run the scheduler loop in this thread until every DAG run has finished (or fail after ``timeout``)."""

    def all_finished() -> bool:
        states = set(run_states(db).values())
        return bool(states) and states <= {"success", "failed"}

    assert run_scheduler_until(settings, db, all_finished, timeout=timeout), (
        f"runs not finished after {timeout} s: {run_states(db)}"
    )
