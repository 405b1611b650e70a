"""The DAG processor stores each DAG's warnings, replaces them on every parse and drops them with the DAG."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db import queries
from headrace.db.engine import Database

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

PORTED = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("ported", default_args={"email_on_failure": True, "retries": 1}):
    EmptyOperator(task_id="a", sla=60)

with DAG("clean"):
    EmptyOperator(task_id="a")
"""


def rewrite(path: Path, text: str) -> None:
    st = path.stat()
    path.write_text(textwrap.dedent(text))
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))


def warnings(db: Database) -> dict[str, list[tuple[str, str]]]:
    with db.session() as session:
        return {d: [(w.warning_type, w.message) for w in ws] for d, ws in queries.dag_warnings(session).items()}


def test_warnings_are_stored_replaced_and_dropped(settings: Settings, db: Database) -> None:
    path = settings.dags_folder / "ported.py"
    path.write_text(textwrap.dedent(PORTED))
    processor = DagProcessor(settings, db)
    assert processor.refresh(NOW).errors == 0  # warnings are not import errors
    assert warnings(db) == {
        "ported": [
            (
                "unsupported_argument",
                "task 'a': argument 'sla' is an Airflow operator argument headrace does not support yet; it is ignored",
            ),
            (
                "unsupported_argument",
                "default_args key 'email_on_failure' is an Airflow operator argument headrace "
                "does not support yet; it is ignored",
            ),
        ]
    }
    with db.session() as session:
        assert queries.dag_warnings(session, ["clean"]) == {}
        assert [w.timestamp for w in queries.dag_warnings(session, ["ported"])["ported"]] == [NOW, NOW]

    rewrite(path, PORTED.replace(", sla=60", "").replace('"retries": 1', '"retries": 1, "colour": "blue"'))
    processor.refresh(NOW)
    assert warnings(db) == {
        "ported": [
            ("unused_default_arg", "default_args key 'colour' is accepted by no task of DAG 'ported'; it is ignored"),
            (
                "unsupported_argument",
                "default_args key 'email_on_failure' is an Airflow operator argument headrace "
                "does not support yet; it is ignored",
            ),
        ]
    }

    rewrite(path, PORTED.replace('with DAG("ported"', 'with DAG("renamed"'))  # "ported" is gone from the file
    processor.refresh(NOW)
    assert set(warnings(db)) == {"renamed"}
    path.unlink()
    processor.refresh(NOW)
    assert warnings(db) == {}


AIRFLOW_DAG_ARGS = """
from datetime import datetime
from headrace import dag
from headrace.operators import EmptyOperator

@dag(schedule=None, start_date=datetime(2026, 1, 1), max_consecutive_failed_dag_runs=3,
     owner_links={"ops": "https://example.com/ops"})
def acl():
    EmptyOperator(task_id="a")

acl()
"""


def test_airflow_dag_arguments_headrace_ignores_parse_and_are_stored_as_warnings(
    settings: Settings, db: Database
) -> None:
    (settings.dags_folder / "acl.py").write_text(textwrap.dedent(AIRFLOW_DAG_ARGS))
    assert DagProcessor(settings, db).refresh(NOW).errors == 0  # an Airflow 3 file: no TypeError
    assert [m for _, m in warnings(db)["acl"]] == [
        "DAG argument 'owner_links' is an Airflow argument headrace does not support; it is ignored "
        "(owners are not shown as links)",
        "DAG argument 'max_consecutive_failed_dag_runs' is an Airflow argument headrace does not support; "
        "it is ignored (the DAG is not paused after failed runs)",
    ]
