"""The CLI says why a run or task instance waits: ``tasks state`` (the previous DAG run holds it, depends_on_past)
and ``dags trigger`` of a paused DAG; SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel
from headrace.scheduler.runs import trigger_dag
from tests.cli.warm import WarmCli

PAST_DAG = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("held", schedule=None, start_date=datetime(2026, 1, 1)):
    EmptyOperator(task_id="a", depends_on_past=True)
"""


def test_tasks_state_prints_the_state_and_the_reason_on_stderr(cli: Any, settings: Settings, db: Database) -> None:
    (settings.dags_folder / "held.py").write_text(textwrap.dedent(PAST_DAG))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        first = trigger_dag(session, "held", logical_date=datetime(2026, 3, 1, tzinfo=UTC), now=datetime.now(UTC))
        second = trigger_dag(session, "held", logical_date=datetime(2026, 3, 2, tzinfo=UTC), now=datetime.now(UTC))
        first_id, second_id = first.run_id, second.run_id
    r = cli("tasks", "state", "held", "a", second_id)
    assert (r.code, r.out.strip()) == (0, "none")
    assert r.err.strip() == (
        f"waiting: depends_on_past: task 'a' is 'none' in the previous run {first_id!r}, not success or skipped"
    )
    r = cli("tasks", "state", "held", "a", first_id)  # the first run: nothing holds it
    assert (r.code, r.out.strip(), r.err.strip()) == (0, "none", "")


def test_triggering_a_paused_dag_says_the_run_waits_for_an_unpause(
    cli_env: dict[str, str], settings: Settings, db: Database, warm_cli: WarmCli
) -> None:
    (settings.dags_folder / "held.py").write_text(textwrap.dedent(PAST_DAG))
    paused_default = settings.with_overrides({"core": {"dags_are_paused_at_creation": True}})
    assert DagProcessor(paused_default, db).refresh(datetime.now(UTC)).errors == 0
    env = {k: v for k, v in cli_env.items() if k != "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION"}
    proc = warm_cli.run(["dags", "trigger", "held"], env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert "DAG held is paused: the run starts when it is unpaused (`headrace dags unpause held`)" in out


def test_dags_test_runs_a_dag_that_starts_paused_and_leaves_it_paused(
    cli_env: dict[str, str], settings: Settings, db: Database, warm_cli: WarmCli
) -> None:
    (settings.dags_folder / "held.py").write_text(textwrap.dedent(PAST_DAG))
    env = {k: v for k, v in cli_env.items() if k != "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION"}
    proc = warm_cli.run(["dags", "test", "held", "2026-03-01"], env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(paused DAG: unpaused for this run)" in proc.stdout and "success" in proc.stdout
    with db.session() as session:
        assert session.get(DagModel, "held").is_paused is True  # type: ignore[union-attr]
