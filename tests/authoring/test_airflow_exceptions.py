"""Airflow's exception names are headrace's own classes and end a try as they do in Airflow (through real tries)."""

from __future__ import annotations

import textwrap

from headrace import exceptions
from headrace.config import Settings
from headrace.dagfiles.loader import load_dags
from headrace.db.engine import Database
from headrace.testing import FAST_LOOP, run_dag_inline

DAG_FILE = """
from datetime import timedelta

from headrace import DAG
from headrace.exceptions import (
    AirflowException, AirflowFailException, AirflowSensorTimeout, AirflowSkipException, AirflowTaskTimeout,
)
from headrace.operators import PythonOperator


def raise_(exc):
    def run():
        raise exc("from the task")
    return run


with DAG("airflow_exceptions", schedule=None, default_args={"retries": 1, "retry_delay": timedelta(0)}):
    for name, exc in [
        ("skip", AirflowSkipException),
        ("fail", AirflowFailException),
        ("sensor_timeout", AirflowSensorTimeout),
        ("plain", AirflowException),
        ("timeout", AirflowTaskTimeout),
    ]:
        PythonOperator(task_id=name, python_callable=raise_(exc))
"""


def test_the_names_are_headraces_classes() -> None:
    assert exceptions.AirflowSkipException is exceptions.SkipTask
    assert exceptions.AirflowFailException is exceptions.FailTask
    assert exceptions.AirflowTaskTimeout is exceptions.TaskTimeout
    assert issubclass(exceptions.AirflowTaskTimeout, BaseException)
    assert not issubclass(exceptions.AirflowTaskTimeout, Exception)  # a task's `except Exception` lets it through
    assert issubclass(exceptions.AirflowSensorTimeout, exceptions.AirflowFailException)
    assert issubclass(exceptions.DagNotFound, exceptions.AirflowException)
    for control in (exceptions.AirflowSkipException, exceptions.AirflowFailException, exceptions.AirflowSensorTimeout):
        assert issubclass(control, exceptions.AirflowException)  # `except AirflowException` catches them, as in Airflow
    assert str(exceptions.AirflowSkipException()) == "" and str(exceptions.SkipTask("why")) == "why"


def test_each_ends_the_try_as_in_airflow(settings: Settings, db: Database) -> None:
    """Through the scheduler loop and supervised tries, on SQLite and PostgreSQL."""
    path = settings.dags_folder / "airflow_exceptions.py"
    path.write_text(textwrap.dedent(DAG_FILE))
    [dag] = load_dags(path)
    result = run_dag_inline(dag, settings=settings.with_overrides(FAST_LOOP))
    assert result.task_states == {
        "skip": "skipped",
        "fail": "failed",  # no retry
        "sensor_timeout": "failed",  # no retry
        "plain": "failed",  # after its retry
        "timeout": "failed",  # after its retry, as a timeout is
    }
    tries = {task_id: len(paths) for task_id, paths in result.log_paths.items()}
    assert tries == {"skip": 1, "fail": 1, "sensor_timeout": 1, "plain": 2, "timeout": 2}
