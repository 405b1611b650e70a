"""A task's exception is recorded whatever it does to be described: ``str()``, ``repr()`` or the traceback failing.

Real supervisor and task process on both databases: the try's row must carry the exception's type (and what
could be said of it), never "exited with code 1 without reporting an outcome".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.db.engine import Database
from tests.supervisor.tryrows import make_try, run_supervisor, ti_row, try_row, write_dag

DAG = """
class BadStr(Exception):
    def __str__(self):
        raise ValueError("str is broken")

class BadBoth(Exception):
    def __str__(self):
        raise ValueError("str is broken")
    def __repr__(self):
        raise ValueError("repr is broken")

class BadNotes(Exception):
    @property
    def __notes__(self):
        raise RuntimeError("notes are broken")  # traceback.format_exception raises

class BadFail(FailTask):
    def __str__(self):
        raise ValueError("str is broken")

def raise_it(kind):
    raise {"str": BadStr, "both": BadBoth, "notes": BadNotes, "fail": BadFail}[kind]("payload")

with DAG("bad_exceptions") as dag:
    for kind in ("str", "both", "notes", "fail"):
        PythonOperator(task_id=kind, python_callable=raise_it, op_args=[kind])
"""


@pytest.mark.parametrize(
    ("task_id", "error", "in_log"),
    [
        ("str", "BadStr: BadStr('payload')", "task failed with BadStr: BadStr('payload')"),
        ("both", "BadBoth: <str() and repr() of the exception failed>", "task failed with BadBoth"),
        ("notes", "BadNotes: payload", "could not be formatted: RuntimeError: notes are broken"),
        ("fail", "BadFail: BadFail('payload')", "task failed without retry (FailTask)"),
    ],
)
def test_exception_that_cannot_be_described_is_still_recorded(
    db: Database, settings: Settings, tmp_path: Path, task_id: str, error: str, in_log: str
) -> None:
    request = make_try(db, write_dag(tmp_path / "dags", DAG), "bad_exceptions", task_id)
    assert run_supervisor(settings, request) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (row.state, row.end_reason, row.exit_code, row.error) == ("failed", "failed", 1, error)
    assert ti_row(db, request.ti_id).state == "failed"
    log = Path(row.log_path).read_text()
    assert in_log in log
    assert "without reporting an outcome" not in log
