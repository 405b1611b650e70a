"""Issue 13: a DAG file that hangs for 30 s at import must not stall a running chain.

A chain of short tasks runs; meanwhile a new DAG file appears whose import
sleeps 30 s (below ``core.dagbag_import_timeout``). Parsing happens beside
the loop, so the chain goes on: no gap between one task's end and the next
one's start exceeds 2 s, and every task ran exactly once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagFile
from headrace.scheduler.runs import trigger_dag
from tests.integration.helpers import write_dag

from .scenario import FAULT, count, counting_dag, finished, run_states, start_scheduler, stop_scheduler, try_rows

MAX_GAP = 2.0
"""Seconds allowed between a chain task's end and the next one's start (the issue's bound)."""


def test_import_hang_beside_running_chain(fault_settings: Settings, fault_db: Database, tmp_path: Path) -> None:
    settings = fault_settings.with_overrides({**FAULT, "core": {**FAULT["core"], "dagbag_import_timeout": 60}})
    out = tmp_path / "out"
    ids = counting_dag(settings, "chain", out, tasks=10, seconds=0.5, chain=True, retries=0, bash_every=0)
    assert DagProcessor(settings, fault_db).refresh(datetime.now(UTC)).errors == 0
    with fault_db.session() as session:
        run_id = trigger_dag(session, "chain", now=datetime.now(UTC)).run_id
    log = tmp_path / "scheduler.log"
    scheduler = start_scheduler(settings, log)
    try:
        deadline = time.monotonic() + 60
        while not count(out / "t1.started"):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        write_dag(
            settings,
            "hang.py",
            """
            # a headrace DAG file whose import takes 30 s
            import time
            time.sleep(30)
        """,
        )
        deadline = time.monotonic() + 90
        while not finished(fault_db):
            assert scheduler.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{run_states(fault_db)}\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
        with fault_db.session() as session:  # the hanging import had not ended when the chain did
            hang_stored = session.scalars(select(DagFile).where(DagFile.fileloc.like("%hang.py"))).first()
    finally:
        stop_scheduler(scheduler, log)
    assert run_states(fault_db) == {run_id: "success"}
    tries = {tt.task_id: tt for tt in try_rows(fault_db)}
    assert sorted(tries) == sorted(ids) and all(tt.try_number == 1 for tt in tries.values())
    assert all(count(out / f"{t}.done") == 1 for t in ids)
    gaps = [(tries[b].start_date - tries[a].end_date).total_seconds() for a, b in zip(ids, ids[1:])]
    assert max(gaps) <= MAX_GAP, f"gaps between chain tasks (s): {[round(g, 2) for g in gaps]}"
    assert hang_stored is None, "the chain did not run beside the hanging import"
