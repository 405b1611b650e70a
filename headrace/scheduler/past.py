"""``depends_on_past`` / ``wait_for_downstream``: what the previous DAG run allows (Airflow's ``PrevDagrunDep``).

A task with ``depends_on_past`` may be scheduled in a run only when, in the
DAG's previous run, the same task ended ``success`` or ``skipped``; with
``wait_for_downstream`` (which implies ``depends_on_past``), also the direct
downstream tasks of it there. As in Airflow:

* the previous run is the one with the latest logical date before this run's;
  for a ``catchup`` DAG, manual runs are not counted (Airflow's
  ``get_previous_scheduled_dagrun``);
* no previous run (the first run), or a run without logical date: no hold;
* the previous run has no task instance of the task (the task is new): a hold,
  unless ``ignore_first_depends_on_past`` and the task has no task instance in
  any earlier run.

The check is made when the trigger rule would schedule the task instance; a
held one stays in state ``none`` and :func:`past_reason` says why (the CLI's
``tasks state --why`` and the UI's task instance page show it). A task
instance that its trigger rule skips or fails is not held (Airflow's default),
unless its task sets ``wait_for_past_depends_before_skipping``: then one that
would be skipped (by its trigger rule, or by a branch or short circuit, see
:mod:`headrace.db.skip_marks`) is held the same way and skipped once let go.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from headrace.dagfiles.serialization import SerializedDag
from headrace.db.models import DagRun, TaskInstance
from headrace.states import TaskInstanceState

_PAST_OK = frozenset({TaskInstanceState.SUCCESS.value, TaskInstanceState.SKIPPED.value})


class PastCheck:
    """The previous run of one DAG run (its primary key ``run_pk``), loaded on first use; answers :meth:`reason`."""

    def __init__(self, session: Session, sdag: SerializedDag, run_pk: int) -> None:
        self.session = session
        self.sdag = sdag
        self.run_pk = run_pk
        self.run: Any = None
        self._loaded = False
        self._prev_run_id: str | None = None
        self._prev_states: dict[str, str] = {}

    def _load(self) -> None:
        self._loaded = True
        self.run = self.session.execute(
            select(DagRun.id, DagRun.dag_id, DagRun.logical_date).where(DagRun.id == self.run_pk)
        ).first()
        if self.run is None or self.run.logical_date is None:
            return
        stmt = select(DagRun.id, DagRun.run_id).where(
            DagRun.dag_id == self.run.dag_id,
            DagRun.logical_date < self.run.logical_date,
            DagRun.id != self.run.id,
        )
        if self.sdag.catchup:
            stmt = stmt.where(DagRun.run_type != "manual")
        prev = self.session.execute(stmt.order_by(DagRun.logical_date.desc()).limit(1)).first()
        if prev is None:
            return
        self._prev_run_id = prev.run_id
        rows = self.session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == prev.id)
        )
        for r in rows:  # several rows per task once tasks are mapped: one not successful holds it (Airflow's count)
            if self._prev_states.get(r.task_id) in (None, *_PAST_OK):
                self._prev_states[r.task_id] = str(r.state)

    def _ran_before(self, task_id: str) -> bool:
        return bool(
            self.session.scalar(
                select(
                    exists().where(
                        TaskInstance.dag_id == self.run.dag_id,
                        TaskInstance.task_id == task_id,
                        TaskInstance.dag_run_id == DagRun.id,
                        DagRun.logical_date < self.run.logical_date,
                    )
                )
            )
        )

    def reason(self, task_id: str) -> str | None:
        """None if the previous run lets task ``task_id`` be scheduled now, else why not (one line)."""
        task = self.sdag.tasks[task_id]
        if not task.depends_on_past:
            return None
        if not self._loaded:
            self._load()
        if self._prev_run_id is None:
            return None
        state = self._prev_states.get(task_id)
        if state is None:
            if task.ignore_first_depends_on_past and not self._ran_before(task_id):
                return None
            return (
                f"depends_on_past: task {task_id!r} has no task instance in the previous run {self._prev_run_id!r} yet"
            )
        if state not in _PAST_OK:
            return (
                f"depends_on_past: task {task_id!r} is {state!r} in the previous run {self._prev_run_id!r}, "
                "not success or skipped"
            )
        if task.wait_for_downstream:
            waiting = sorted(
                d for d in task.downstream_task_ids if self._prev_states.get(d, TaskInstanceState.NONE) not in _PAST_OK
            )
            if waiting:
                return (
                    f"wait_for_downstream: the downstream tasks {', '.join(waiting)} of {task_id!r} have not "
                    f"succeeded (or been skipped) in the previous run {self._prev_run_id!r}"
                )
        return None


def past_reason(session: Session, sdag: SerializedDag, run_pk: int, task_id: str) -> str | None:
    """Why the previous run holds task ``task_id`` of the run ``run_pk`` (see :class:`PastCheck`), or None."""
    return PastCheck(session, sdag, run_pk).reason(task_id)


__all__ = ["PastCheck", "past_reason"]
