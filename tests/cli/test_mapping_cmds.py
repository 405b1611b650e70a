"""``tasks state|clear|render|test --map-index`` on a mapped task, through the real CLI (SQLite and PostgreSQL)."""

from __future__ import annotations

import textwrap
from typing import Any

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.testing import run_scheduler_until
from tests.integration.helpers import FAST

Cli = Any  # the `cli` fixture in conftest.py: cli(*args) -> CliResult(code, out, err)

MAPPED_DAG = """
from datetime import datetime
from headrace import DAG, task
from headrace.operators import BashOperator

with DAG("mapped_cli", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def words() -> list[str]:
        return ["alpha", "beta", "gamma"]

    @task
    def shout(word: str) -> str:
        if word == "beta":
            raise ValueError("no beta")
        return word.upper()

    BashOperator.partial(task_id="say").expand(bash_command=words().map(lambda w: f"echo {w} {{{{ ds }}}}"))
    shout.expand(word=["alpha", "beta"])
"""


def _states(db: Database) -> dict[tuple[str, int], str]:
    with db.session() as s:
        rows = s.execute(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state))
        return {(t, i): state for t, i, state in rows}


def test_state_clear_render_and_test_by_map_index(cli: Cli, settings: Settings, db: Database) -> None:
    (settings.dags_folder / "mapped_cli.py").write_text(textwrap.dedent(MAPPED_DAG))
    r = cli("dags", "test", "mapped_cli", "2026-03-01")
    assert r.code == 1, r.out + r.err  # shout[1] fails
    # each index is followed on its own: one line per state it reached, never a flip-flop between indexes
    assert r.out.count("mapped_cli.shout[1] try 1: failed") == 1, r.out
    for index in (0, 1, 2):
        assert r.out.count(f"mapped_cli.say[{index}] try 1: success") == 1, r.out
        assert r.out.count(f"mapped_cli.say[{index}] try 1: running") <= 1, r.out
    assert "mapped_cli.words try 1: success" in r.out and "words[" not in r.out
    run_id = "test__2026-03-01T00:00:00+00:00"
    assert _states(db) == {
        ("words", -1): "success",
        ("say", 0): "success",
        ("say", 1): "success",
        ("say", 2): "success",
        ("shout", 0): "success",
        ("shout", 1): "failed",
    }
    r = cli("tasks", "state", "mapped_cli", "shout", run_id, "--map-index", "1")
    assert (r.code, r.out.strip()) == (0, "failed")
    r = cli("tasks", "state", "mapped_cli", "shout", run_id, "--map-index", "0")
    assert (r.code, r.out.strip()) == (0, "success")
    r = cli("tasks", "state", "mapped_cli", "shout", run_id)
    assert r.code == 1 and "is mapped (2 task instances" in r.err and "--map-index" in r.err
    r = cli("tasks", "state", "mapped_cli", "shout", run_id, "--map-index", "7")
    assert r.code == 1 and "no task instance at --map-index 7" in r.err
    r = cli("tasks", "state", "mapped_cli", "words", run_id)
    assert (r.code, r.out.strip()) == (0, "success")

    r = cli("tasks", "render", "mapped_cli", "say", run_id, "--map-index", "2")
    assert r.code == 0, r.err
    assert "echo gamma {{ ds }}" in r.out  # pulled from XCom (through .map): data, not rendered, as Airflow
    r = cli("tasks", "render", "mapped_cli", "say", run_id)
    assert r.code == 1 and "--map-index" in r.err
    r = cli("tasks", "render", "mapped_cli", "words", run_id, "--map-index", "0")
    assert r.code == 1 and "is not mapped" in r.err

    r = cli("tasks", "test", "mapped_cli", "shout", run_id, "--map-index", "0")
    assert r.code == 0 and 'XCom return_value = "ALPHA"' in r.out, r.out + r.err

    r = cli("tasks", "clear", "mapped_cli", "-t", "^shout$", "--map-index", "1", "--yes")
    assert r.code == 0 and "cleared 1 task instance(s)" in r.out, r.out + r.err
    assert "shout[1]" in r.out
    assert _states(db)[("shout", 1)] == "none" and _states(db)[("shout", 0)] == "success"
    r = cli("tasks", "clear", "mapped_cli", "-t", "^say$", "--yes")  # a mapped task: all its indices
    assert r.code == 0 and "cleared 3 task instance(s)" in r.out, r.out + r.err
    assert [s for (t, _), s in _states(db).items() if t == "say"] == ["none", "none", "none"]


REMAP_DAG = """
from datetime import datetime
from pathlib import Path
from headrace import DAG, task

with DAG("remap_cli", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def words() -> list[str]:
        n = int((Path(__file__).parent / "remap_cli_length.txt").read_text())
        return ["alpha", "beta", "gamma"][:n]

    @task
    def shout(word: str) -> str:
        return word.upper()

    shout.expand(word=words())
"""


def test_clear_then_a_shorter_list_leaves_a_removed_index(cli: Cli, settings: Settings, db: Database) -> None:
    (settings.dags_folder / "remap_cli.py").write_text(textwrap.dedent(REMAP_DAG))
    (settings.dags_folder / "remap_cli_length.txt").write_text("3")
    r = cli("dags", "test", "remap_cli", "2026-03-01")
    assert r.code == 0, r.out + r.err
    run_id = "test__2026-03-01T00:00:00+00:00"
    assert [s for (t, _), s in sorted(_states(db).items()) if t == "shout"] == ["success"] * 3

    (settings.dags_folder / "remap_cli_length.txt").write_text("2")
    r = cli("tasks", "clear", "remap_cli", "--yes")
    assert r.code == 0 and "cleared 4 task instance(s)" in r.out, r.out + r.err
    assert cli("dags", "unpause", "remap_cli").code == 0

    def ended() -> bool:
        with db.read_session() as session:
            return session.scalar(select(DagRun.state)) == "success"

    assert run_scheduler_until(settings.with_overrides(FAST), db, ended, timeout=120)
    assert {i: s for (t, i), s in _states(db).items() if t == "shout"} == {0: "success", 1: "success", 2: "removed"}
    r = cli("tasks", "state", "remap_cli", "shout", run_id, "--map-index", "2")
    assert (r.code, r.out.strip()) == (0, "removed")
    r = cli("tasks", "states-for-dag-run", "remap_cli", run_id)
    assert r.code == 0 and "shout[2]" in r.out and "removed" in r.out, r.out
