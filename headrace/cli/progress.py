"""Waiting for DAG runs with a live progress display (``--wait``, ``backfill``), and :class:`RunWatcher`,
which prints a run's task states as they change (``dags test``, ``standalone``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from rich.live import Live
from rich.table import Table
from sqlalchemy import select

from headrace.cli.common import console, styled
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance

FINISHED_RUN = ("success", "failed")


def _snapshot(db: Database, run_pks: Sequence[int]) -> tuple[list[DagRun], dict[int, Counter[str]]]:
    with db.session() as session:
        runs = list(session.scalars(select(DagRun).where(DagRun.id.in_(run_pks)).order_by(DagRun.logical_date)))
        counts: dict[int, Counter[str]] = {pk: Counter() for pk in run_pks}
        for run_pk, state in session.execute(
            select(TaskInstance.dag_run_id, TaskInstance.state).where(TaskInstance.dag_run_id.in_(run_pks))
        ):
            counts[run_pk][state] += 1
    return runs, counts


def _render(runs: list[DagRun], counts: dict[int, Counter[str]], elapsed: float) -> Table:
    table = Table(title=f"waiting for {len(runs)} DAG run(s) — {elapsed:.0f} s")
    table.add_column("run_id")
    table.add_column("state")
    table.add_column("tasks done")
    table.add_column("task states")
    for run in runs:
        c = counts[run.id]
        total = sum(c.values())
        done = sum(c[s] for s in ("success", "failed", "upstream_failed", "skipped", "removed"))
        table.add_row(
            run.run_id,
            styled(run.state),
            f"{done}/{total}",
            "  ".join(f"{styled(s)} {n}" for s, n in sorted(c.items())),
        )
    return table


def wait_for_runs(
    db: Database, run_pks: Sequence[int], *, poll: float = 0.5, timeout: float | None = None
) -> list[DagRun]:
    """Show live progress until every run is success or failed; return the final runs.

    Raises ``TimeoutError`` after ``timeout`` seconds if given.
    """
    start = time.monotonic()
    runs, counts = _snapshot(db, run_pks)
    with Live(_render(runs, counts, 0.0), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            runs, counts = _snapshot(db, run_pks)
            elapsed = time.monotonic() - start
            live.update(_render(runs, counts, elapsed))
            if all(r.state in FINISHED_RUN for r in runs):
                return runs
            if timeout is not None and elapsed > timeout:
                raise TimeoutError(f"DAG runs not finished after {timeout:.0f} s")
            time.sleep(poll)


class RunWatcher:
    """Prints the task states of one DAG run as they change; says when the run ends.

    One line per change of a task instance: ``dag.task try N: state``, with a mapped task's index as
    ``dag.task[i]`` (each index is followed on its own).
    """

    def __init__(self, db: Database, run_pk: int, *, on_end: Callable[[DagRun], None] | None = None) -> None:
        self.db, self.run_pk, self.on_end = db, run_pk, on_end
        self.seen: dict[tuple[str, int], tuple[str, int]] = {}
        """(task_id, map_index) → the (state, try_number) last printed."""
        self.ended: DagRun | None = None

    def __call__(self, _now: datetime) -> None:
        if self.ended is not None:
            return
        with self.db.session() as session:
            run = session.get(DagRun, self.run_pk)
            assert run is not None
            tis = session.execute(
                select(
                    TaskInstance.task_id,
                    TaskInstance.map_index,
                    TaskInstance.state,
                    TaskInstance.try_number,
                    TaskInstance.end_reason,
                )
                .where(TaskInstance.dag_run_id == self.run_pk)
                .order_by(TaskInstance.updated_at, TaskInstance.task_id, TaskInstance.map_index)
            ).all()
        for task_id, map_index, ti_state, try_number, reason in tis:
            key = (task_id, map_index)
            if self.seen.get(key) != (ti_state, try_number) and ti_state not in ("none", "scheduled"):
                self.seen[key] = (ti_state, try_number)
                extra = f" ({reason})" if reason and reason not in (ti_state, "success") else ""
                index = f"[{map_index}]" if map_index >= 0 else ""
                console.print(f"  {run.dag_id}.{task_id}{index} try {try_number}: {styled(ti_state)}{extra}")
        if run.state in ("success", "failed"):
            self.ended = run
            if self.on_end is not None:
                self.on_end(run)
