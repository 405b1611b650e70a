"""SequentialExecutor: each try in a fresh ``python -m headrace.supervisor``."""

from __future__ import annotations

from pathlib import Path

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.executors import SequentialExecutor, make_executor
from headrace.executors.base import ExecutorEvent
from tests.supervisor.tryrows import create_run, queue_try, ti_row, write_dag


def test_runs_queued_tries_one_by_one(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("seq") as dag:
            a = PythonOperator(task_id="a", python_callable=lambda: "A")
            b = BashOperator(task_id="b", bash_command="echo B")
    """,
    )
    executor = make_executor(settings.with_overrides({"core": {"executor": "sequential"}}))
    assert isinstance(executor, SequentialExecutor)
    executor.start()
    run_pk = create_run(db, dag_file, "seq")
    a = queue_try(db, run_pk, "a", dag_file)
    assert executor.open_slots() == 1
    executor.queue(a)
    assert executor.open_slots() == 0 and executor.fileno() is None
    assert executor.sync() == [ExecutorEvent(a.ti_id, 1, "exited", 0)]
    b = queue_try(db, run_pk, "b", dag_file)
    executor.queue(b)
    executor.queue(b)  # the same try twice: the second supervisor loses the claim
    assert [e.exit_code for e in executor.sync()] == [0, 2]
    assert ti_row(db, a.ti_id).state == ti_row(db, b.ti_id).state == "success"
    executor.terminate()
