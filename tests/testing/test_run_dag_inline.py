"""``headrace.testing.run_dag_inline``: a DAG author's unit test runs a DAG to its end in one call."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from headrace.authoring.dag import DAG
from headrace.config import Settings
from headrace.dagfiles.loader import load_dags
from headrace.testing import run_dag_inline

DAG_FILE = """
from headrace import dag, task


@task
def double(n: int) -> int:
    return n * 2


@task
def check(value: int, ds: str | None = None) -> None:
    if value != 42:
        raise ValueError(f"got {value}")
    print("ds was", ds)


@dag(schedule=None)
def inline_demo() -> None:
    check(double(21))


inline_demo()


@dag(schedule=None)
def inline_fails() -> None:
    check(double(1))


inline_fails()
"""


def dags_of(tmp_path: Path) -> dict[str, DAG]:
    path = tmp_path / "inline_dags.py"
    path.write_text(textwrap.dedent(DAG_FILE))
    return {d.dag_id: d for d in load_dags(path)}


def test_a_dag_runs_to_success_with_its_logical_date(tmp_path: Path) -> None:
    dags = dags_of(tmp_path)
    result = run_dag_inline(dags["inline_demo"], logical_date=datetime(2026, 3, 1, tzinfo=UTC))
    assert result.state == "success"
    assert result.task_states == {"double": "success", "check": "success"}
    log = Path(result.log_paths["check"][0]).read_text()
    assert "ds was 2026-03-01" in log


def test_a_failing_task_fails_the_run(tmp_path: Path, settings: Settings) -> None:
    dags = dags_of(tmp_path)
    result = run_dag_inline(
        dags["inline_fails"],
        settings=settings.with_overrides(
            {"scheduler": {"loop_interval": 0.2, "heartbeat_interval": 0.5}, "core": {"executor": "local"}}
        ),
    )
    assert result.state == "failed"
    assert result.task_states == {"double": "success", "check": "failed"}
    assert "ValueError: got 2" in Path(result.log_paths["check"][0]).read_text()
