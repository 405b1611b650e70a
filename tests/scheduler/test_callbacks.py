"""DAG-level callbacks run once, in a child, and user errors never reach the scheduler."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.db.transitions import set_run_state
from headrace.scheduler.callbacks import CallbackRunner
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import DagRunState

from .conftest import NOW


def test_callbacks_run_once_with_context(settings: Settings, db: Database, tmp_path: Path) -> None:
    out = tmp_path / "calls.txt"
    (settings.dags_folder / "cb.py").write_text(
        textwrap.dedent(f"""
        from headrace import DAG
        from headrace.operators import EmptyOperator

        def on_failure(context):
            with open({str(out)!r}, "a") as f:
                f.write(f"{{context['dag_run'].run_id}} {{context['reason']}}\\n")

        def on_success(context):
            raise RuntimeError("a broken callback must not hurt the scheduler")

        with DAG("cb", on_failure_callback=on_failure, on_success_callback=on_success):
            EmptyOperator(task_id="t")
    """)
    )
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        bad = trigger_dag(session, "cb", run_id="bad", now=NOW)
        good = trigger_dag(session, "cb", run_id="good", logical_date=datetime(2023, 1, 1, tzinfo=UTC), now=NOW)
        start_queued_runs(session, NOW)
        set_run_state(session, bad.id, DagRunState.RUNNING, DagRunState.FAILED, end_date=NOW)
        set_run_state(session, good.id, DagRunState.RUNNING, DagRunState.SUCCESS, end_date=NOW)
    runner = CallbackRunner(timeout=10)
    assert runner.run_pending(db, NOW, cache=DagCache()) == 2
    assert runner.reap(wait=True) == 2
    assert runner.run_pending(db, NOW, cache=DagCache()) == 0
    assert out.read_text() == "bad task_failure\n"
    with db.session() as session:
        assert all(r.callbacks_done for r in session.query(DagRun))
