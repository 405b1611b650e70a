"""The TaskFlow idiom type-checks for DAG authors: mypy --strict over the bundled examples and a typical DAG."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

import headrace

EXAMPLES = Path(headrace.__file__).parent / "example_dags"

TASKFLOW = """
from datetime import datetime

from headrace import dag, task, task_group


@task
def extract() -> dict[str, int]:
    return {"a": 1}


@task
def transform(data: dict[str, int], factor: int) -> int:
    return sum(data.values()) * factor


@task
def load(total: int) -> None:
    print(total)


@task_group
def summarize(data: dict[str, int]) -> None:
    load(transform(data, factor=3))


@dag(schedule="@daily", start_date=datetime(2024, 1, 1))
def etl() -> None:
    load(transform(extract(), factor=2))  # one task's result (an XComArg) passed to the next
    summarize(extract())  # and into a task group


etl()
"""


def check(*paths: str) -> tuple[str, int]:
    out, err, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent", *paths])
    return out + err, status


def test_bundled_examples_type_check() -> None:
    report, status = check(*sorted(str(p) for p in EXAMPLES.glob("example_*.py")))
    assert status == 0, report


def test_passing_a_task_result_to_another_task_type_checks(tmp_path: Path) -> None:
    path = tmp_path / "taskflow_dag.py"
    path.write_text(textwrap.dedent(TASKFLOW))
    report, status = check(str(path))
    assert status == 0, report


def test_a_real_type_error_is_still_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken_dag.py"
    path.write_text(textwrap.dedent(TASKFLOW) + "\nx: int = extract.function()\n")
    report, status = check(str(path))
    assert status == 1 and "incompatible types in assignment" in report.lower(), report
