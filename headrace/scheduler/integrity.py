"""Unfinished DAG runs follow a new version of their DAG (Airflow 3's ``verify_integrity`` for a DAG folder).

As in Airflow 3 for DAGs of a bundle without versions (the DAG folder): when the DAG processor stores a new
version of a DAG, each queued or running run of it moves to that version (``dag_run.dag_version_id``) the next
time the scheduler looks (:func:`follow_new_versions`) and its task instances are checked against the new
graph (:func:`verify_integrity`):

* a task gone from the DAG: its unfinished instances become ``removed`` (a queued or running try is stopped by
  its supervisor at the next heartbeat); finished ones keep their state, as in Airflow;
* a ``removed`` instance of a task back in the DAG goes back to ``none`` (Airflow "restores" it), unless the
  rules below remove it again;
* a mapped task over literals (``expand(x=[1, 2])``) of another length: indices past it become ``removed``
  whatever their state (Airflow), their XComs are deleted; missing indices are created in ``none``; a ``-1``
  instance (the task was not mapped before) becomes ``removed`` when the literal is not empty;
* a task mapped over an upstream's value whose length is known now: indices past it become ``removed``
  (missing ones are created when one of its indices may run, by :func:`headrace.scheduler.mapping.revise`);
  while its length is not known its indices are left for that revision (Airflow removes them all, and then
  nothing would expand them again);
* a task new in the DAG gets its instances as in a new run (``-1``, or ``0..n-1`` for a literal of length n).

A run of a paused or inactive DAG moves when the DAG runs again, as in Airflow (only scheduled runs are
verified).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from headrace.dagfiles.serialization import SerializedDag
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance, TaskMap, XCom
from headrace.db.transitions import set_ti_state
from headrace.scheduler import mapping
from headrace.scheduler.dagcache import DagCache
from headrace.states import DagRunState, TaskInstanceState, can_transition

log = logging.getLogger(__name__)

_TI = TaskInstanceState
_RUN_UNFINISHED = [DagRunState.QUEUED.value, DagRunState.RUNNING.value]


class OutdatedRun(NamedTuple):
    """An unfinished run whose DAG has another current version (:func:`outdated_runs`)."""

    id: int
    dag_id: str
    run_id: str
    dag_version_id: int
    current_version_id: int


def outdated_runs(session: Session, *, limit: int = 200) -> list[OutdatedRun]:
    """Queued or running runs of unpaused, active DAGs bound to a version other than the DAG's current one
    (the ``dag_version`` row of ``dag.version_hash``); oldest first, locked (PostgreSQL), at most ``limit``."""
    stmt = (
        select(DagRun.id, DagRun.dag_id, DagRun.run_id, DagRun.dag_version_id, DagVersion.id)
        .join(DagModel, DagModel.dag_id == DagRun.dag_id)
        .join(DagVersion, (DagVersion.dag_id == DagModel.dag_id) & (DagVersion.version_hash == DagModel.version_hash))
        .where(
            DagRun.state.in_(_RUN_UNFINISHED),
            DagModel.is_paused.is_(False),
            DagModel.is_active.is_(True),
            DagRun.dag_version_id != DagVersion.id,
        )
        .order_by(DagRun.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=DagRun)
    )
    return [OutdatedRun._make(row) for row in session.execute(stmt)]


class _Row(NamedTuple):
    id: int
    task_id: str
    map_index: int
    state: str


def _length(
    session: Session, sdag: SerializedDag, dag_run_pk: int, task_id: str, lengths: dict[str, int | None]
) -> int | None:
    """The number of instances mapped ``task_id`` has now (None while not known), counted once per run."""
    if task_id not in lengths:
        spec = sdag.tasks[task_id].expand_input
        assert spec is not None
        literal = mapping.literal_length(spec)
        lengths[task_id] = literal if literal is not None else mapping.expand_length(session, sdag, dag_run_pk, spec)
    return lengths[task_id]


def _target(
    session: Session, sdag: SerializedDag, dag_run_pk: int, row: _Row, lengths: dict[str, int | None]
) -> _TI | None:
    """The state ``row`` must have under ``sdag`` when it differs from its state now (else None)."""
    state = _TI(row.state)
    task = sdag.tasks.get(row.task_id)
    if task is None:
        return _TI.REMOVED if not state.is_finished else None
    if state is _TI.REMOVED:
        state = _TI.NONE  # restored, unless its index is past the task's length below
    if task.expand_input is not None:
        literal = mapping.literal_length(task.expand_input)
        if row.map_index >= 0:
            length = _length(session, sdag, dag_run_pk, row.task_id, lengths)
            if length == 0 and row.map_index == 0 and can_transition(_TI(row.state), _TI.SKIPPED):
                state = _TI.SKIPPED  # mapped over nothing: skipped, as at a first expansion
            elif length is not None and row.map_index >= length:
                state = _TI.REMOVED
        elif literal:
            state = _TI.REMOVED  # was not mapped (or mapped over nothing): its indices replace it
    return None if state.value == row.state else state


def verify_integrity(
    session: Session, sdag: SerializedDag, *, dag_run_pk: int, run_id: str, now: datetime
) -> dict[str, int]:
    """Check the task instances of run ``dag_run_pk`` against ``sdag`` (see the module docstring) and apply the
    changes; return counts ``{"removed": …, "restored": …, "created": …}``. Does not change the run's version."""
    rows = [
        _Row(*r)
        for r in session.execute(
            select(TaskInstance.id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
                TaskInstance.dag_run_id == dag_run_pk
            )
        )
    ]
    lengths: dict[str, int | None] = {}
    counts = {"removed": 0, "restored": 0, "created": 0}
    removed_indices: dict[str, list[int]] = {}
    for row in rows:
        new = _target(session, sdag, dag_run_pk, row, lengths)
        if new is None:
            continue
        current = _TI(row.state)
        values: dict[str, Any] = {"updated_at": now, "next_retry_at": None}
        if new in (_TI.REMOVED, _TI.SKIPPED):
            values["end_date"] = now
            if new is _TI.SKIPPED:
                values["end_reason"] = "skipped"
            if current in (_TI.NONE, _TI.SCHEDULED, _TI.UP_FOR_RETRY):
                values["start_date"] = now
        else:  # restored: waits again like a cleared instance
            values.update(start_date=None, end_date=None, end_reason=None)
        if set_ti_state(session, row.id, current, new, **values):
            counts["restored" if new is _TI.NONE else "removed"] += 1
            if new is _TI.REMOVED and row.map_index >= 0 and row.task_id in sdag.tasks:
                removed_indices.setdefault(row.task_id, []).append(row.map_index)
    for task_id, indices in removed_indices.items():
        _delete_values(session, dag_run_pk, task_id, indices)
    counts["created"] = _create_missing(session, sdag, dag_run_pk, run_id, now, rows)
    return counts


def _delete_values(session: Session, dag_run_pk: int, task_id: str, indices: Iterable[int]) -> None:
    """Delete the XComs and ``task_map`` rows of removed indices (a downstream task reads only the kept ones)."""
    for model in (XCom, TaskMap):
        session.execute(
            delete(model)
            .where(model.dag_run_id == dag_run_pk, model.task_id == task_id, model.map_index.in_(list(indices)))
            .execution_options(synchronize_session=False)
        )


def _create_missing(
    session: Session, sdag: SerializedDag, dag_run_pk: int, run_id: str, now: datetime, rows: list[_Row]
) -> int:
    """Insert the instances of new tasks and the missing indices of literal mapped tasks; return how many."""
    existing: dict[str, set[int]] = {}
    for row in rows:
        existing.setdefault(row.task_id, set()).add(row.map_index)
    values: list[dict[str, Any]] = []
    for task in sdag.tasks.values():
        have = existing.get(task.task_id)
        n = mapping.literal_length(task.expand_input)
        if have is None:
            wanted: Iterable[int] = range(n) if n is not None and n >= 1 else (-1,)
        elif n is not None and n >= 1:
            wanted = range(n)
        else:
            continue
        values.extend(
            mapping.task_instance_values(sdag, task, dag_run_pk=dag_run_pk, run_id=run_id, map_index=i, now=now)
            for i in wanted
            if have is None or i not in have
        )
    if values:
        session.execute(insert(TaskInstance), values)
    return len(values)


def follow_new_versions(session: Session, now: datetime, *, cache: DagCache) -> list[int]:
    """Move every outdated unfinished run (:func:`outdated_runs`) to its DAG's current version and verify its
    task instances (:func:`verify_integrity`); return the ids of the runs moved. A version that cannot be read
    is logged and the run left as it is (tried again on a later pass)."""
    moved: list[int] = []
    for run in outdated_runs(session):
        try:
            sdag = cache.get(session, run.current_version_id)
        except Exception as exc:  # noqa: BLE001 - an unreadable stored version must not stop the scheduler
            log.error("DAG run %s of %s: cannot read the DAG's current version (%s)", run.run_id, run.dag_id, exc)
            continue
        counts = verify_integrity(session, sdag, dag_run_pk=run.id, run_id=run.run_id, now=now)
        session.execute(
            update(DagRun)
            .where(DagRun.id == run.id, DagRun.dag_version_id == run.dag_version_id)
            .values(dag_version_id=run.current_version_id)
            .execution_options(synchronize_session=False)
        )
        log.info(
            "DAG run %s of %s follows the DAG's new version (%d → %d): %d task instances removed, %d restored, "
            "%d created",
            run.run_id,
            run.dag_id,
            run.dag_version_id,
            run.current_version_id,
            counts["removed"],
            counts["restored"],
            counts["created"],
        )
        moved.append(run.id)
    return moved


def follow_in_transaction(db: Database, now: datetime, *, cache: DagCache) -> list[int]:
    """:func:`follow_new_versions` in a transaction of its own (none opened when no run is outdated)."""
    with db.read_session() as session:
        if not outdated_runs(session, limit=1):
            return []
    with db.session() as session:
        return follow_new_versions(session, now, cache=cache)


__all__ = ["OutdatedRun", "follow_in_transaction", "follow_new_versions", "outdated_runs", "verify_integrity"]
