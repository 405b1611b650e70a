"""Dynamic task mapping in the scheduler: count a mapped task's instances and create them (Airflow's expansion).

A DAG run starts with one task instance per task at ``map_index = -1``, except
a mapped task whose input is all literal: it gets its indices ``0..n-1`` at
once (:func:`new_task_instances`). When the trigger rule of a mapped task's
``-1`` instance lets it run, :func:`expand` counts what it maps over
(:func:`expand_length`) and

* ``n >= 1``: the instance becomes index 0 (same row, so its id stays) and
  indices ``1..n-1`` are inserted, all in state ``none``: the readiness pass
  decides each one;
* ``n == 0``: it is ``skipped`` (its downstream tasks follow their trigger rules);
* ``n > core.max_map_length`` (a product or zip of pushed values; each pushed value was held to it when
  pushed, as in Airflow): it ``failed`` (end reason ``map_length_exceeded``).

An already expanded task is expanded again by :func:`revise` when one of its instances may run (after a
clear, its upstream may have pushed a list of another length): Airflow's ``removed`` state for indices past
the new length, new instances for the missing ones.

Counting (see :mod:`headrace.authoring.expand_input` for the stored specs): a
literal has its length; a task's value has the length recorded in
``task_map`` when it was pushed; a mapped task's value has as many items as
its instances pushed values (by map index); ``zip`` takes the shortest (the
longest with a fill value); several ``expand`` arguments multiply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from headrace.authoring.xcom import RETURN_KEY
from headrace.dagfiles.serialization import SerializedDag, SerializedTask
from headrace.db.models import TaskInstance, TaskMap, XCom
from headrace.db.transitions import set_ti_state
from headrace.states import TaskInstanceState, can_transition

log = logging.getLogger(__name__)

MAP_LENGTH_EXCEEDED = "map_length_exceeded"
"""End reason of a mapped task instance that would expand past ``core.max_map_length``."""

_UNFINISHED = [s.value for s in TaskInstanceState if not s.is_finished]


def literal_length(spec: Mapping[str, Any] | None) -> int | None:
    """The number of instances of a mapped task whose input is all literal; None if it reads a task's value."""
    if spec is None:
        return None
    if spec["type"] == "list_of_dicts":
        return _literal(spec["length"])
    lengths = [_literal(s) for s in spec["lengths"].values()]
    return None if any(n is None for n in lengths) else math.prod(n for n in lengths if n is not None)


def _literal(spec: Mapping[str, Any]) -> int | None:
    if "literal" in spec:
        return int(spec["literal"])
    if "zip" in spec:
        lengths = [_literal(s) for s in spec["zip"]]
        if any(n is None for n in lengths):
            return None
        known = [n for n in lengths if n is not None]
        return (max if spec.get("longest") else min)(known, default=0)
    return None


def xcom_sources(spec: Mapping[str, Any] | None) -> set[str]:
    """The task ids whose pushed values decide a mapped task's length (empty for an all-literal input)."""
    if spec is None:
        return set()
    parts = [spec["length"]] if spec["type"] == "list_of_dicts" else list(spec["lengths"].values())
    out: set[str] = set()
    while parts:
        part = parts.pop()
        if "xcom" in part:
            out.add(str(part["xcom"]))
        parts.extend(part.get("zip", []))
    return out


def _pushed_length(session: Session, sdag: SerializedDag, dag_run_pk: int, task_id: str) -> int | None:
    """The number of items of ``task_id``'s value in this run; None while it can still change."""
    upstream = sdag.tasks.get(task_id)
    if upstream is not None and upstream.is_mapped:
        unfinished = session.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(
                TaskInstance.dag_run_id == dag_run_pk,
                TaskInstance.task_id == task_id,
                TaskInstance.state.in_(_UNFINISHED),
            )
        )
        if unfinished:
            return None
        return int(
            session.scalar(
                select(func.count())
                .select_from(XCom)
                .where(
                    XCom.dag_run_id == dag_run_pk,
                    XCom.task_id == task_id,
                    XCom.key == RETURN_KEY,
                    XCom.map_index >= 0,
                )
            )
            or 0
        )
    length = session.scalar(
        select(TaskMap.length).where(
            TaskMap.dag_run_id == dag_run_pk, TaskMap.task_id == task_id, TaskMap.map_index == -1
        )
    )
    if length is not None:
        return int(length)
    state = session.scalar(
        select(TaskInstance.state).where(TaskInstance.dag_run_id == dag_run_pk, TaskInstance.task_id == task_id)
    )
    # finished without pushing (skipped, failed, and a trigger rule ran the mapped task anyway): nothing to map
    return 0 if state is not None and TaskInstanceState(state).is_finished else None


def _spec_length(session: Session, sdag: SerializedDag, dag_run_pk: int, spec: Mapping[str, Any]) -> int | None:
    if "literal" in spec:
        return int(spec["literal"])
    if "xcom" in spec:
        return _pushed_length(session, sdag, dag_run_pk, str(spec["xcom"]))
    lengths = [_spec_length(session, sdag, dag_run_pk, s) for s in spec["zip"]]
    if any(n is None for n in lengths):
        return None
    known = [n for n in lengths if n is not None]
    return (max if spec.get("longest") else min)(known, default=0)


def expand_length(session: Session, sdag: SerializedDag, dag_run_pk: int, spec: Mapping[str, Any]) -> int | None:
    """How many task instances a mapped task has in run ``dag_run_pk``; None while what it maps over is not
    known yet (its upstream task has not finished)."""
    if spec["type"] == "list_of_dicts":
        return _spec_length(session, sdag, dag_run_pk, spec["length"])
    lengths = [_spec_length(session, sdag, dag_run_pk, s) for s in spec["lengths"].values()]
    if any(n is None for n in lengths):
        return None
    return math.prod(n for n in lengths if n is not None)


def task_instance_values(
    sdag: SerializedDag, task: SerializedTask, *, dag_run_pk: int, run_id: str, map_index: int, now: datetime
) -> dict[str, Any]:
    """The columns of a new task instance (state ``none``) of ``task`` at ``map_index`` (its priority weight
    with the task's ``weight_rule`` applied)."""
    return {
        "dag_run_id": dag_run_pk,
        "dag_id": sdag.dag_id,
        "run_id": run_id,
        "task_id": task.task_id,
        "map_index": map_index,
        "state": TaskInstanceState.NONE.value,
        "try_number": 0,
        "max_tries": task.retries,
        "priority_weight": sdag.priority_weights[task.task_id],
        "pool": task.pool,
        "pool_slots": task.pool_slots,
        "queue": task.queue,
        "updated_at": now,
    }


def new_task_instances(sdag: SerializedDag, *, dag_run_pk: int, run_id: str, now: datetime) -> list[dict[str, Any]]:
    """The task instances a new DAG run starts with: one at ``-1`` per task, except ``0..n-1`` for a mapped
    task with an all-literal input of length ``n >= 1`` (Airflow expands those when it creates the run; an
    empty literal stays at ``-1`` for the expansion step to skip)."""
    rows: list[dict[str, Any]] = []
    for task in sdag.tasks.values():
        n = literal_length(task.expand_input)
        indices = range(n) if n is not None and n >= 1 else range(-1, 0)
        rows.extend(
            task_instance_values(sdag, task, dag_run_pk=dag_run_pk, run_id=run_id, map_index=i, now=now)
            for i in indices
        )
    return rows


def expand(
    session: Session,
    sdag: SerializedDag,
    task: SerializedTask,
    ti_id: int,
    *,
    dag_run_pk: int,
    run_id: str,
    now: datetime,
    max_map_length: int,
) -> TaskInstanceState | list[int] | None:
    """Expand the ``-1`` task instance ``ti_id`` of mapped ``task`` (state ``none``).

    Returns the ids of its instances (index 0 is ``ti_id``), all in state ``none``; or the state it was set to
    (``skipped`` for nothing to map over, ``failed`` past ``max_map_length``); or None when the length is not
    known yet or another scheduler expanded it first.
    """
    assert task.expand_input is not None
    length = expand_length(session, sdag, dag_run_pk, task.expand_input)
    if length is None:
        return None
    if length == 0 or length > max_map_length:
        new = TaskInstanceState.SKIPPED if length == 0 else TaskInstanceState.FAILED
        reason = "skipped" if length == 0 else MAP_LENGTH_EXCEEDED
        if length:
            log.error(
                "task %s.%s (run %s) would expand to %d task instances, more than core.max_map_length = %d; it fails",
                sdag.dag_id,
                task.task_id,
                run_id,
                length,
                max_map_length,
            )
        won = set_ti_state(
            session,
            ti_id,
            TaskInstanceState.NONE,
            new,
            start_date=now,
            end_date=now,
            end_reason=reason,
            updated_at=now,
        )
        return new if won else None
    moved = session.execute(
        update(TaskInstance)
        .where(
            TaskInstance.id == ti_id,
            TaskInstance.map_index == -1,
            TaskInstance.state == TaskInstanceState.NONE.value,
        )
        .values(map_index=0, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    if length > 1:
        session.execute(
            insert(TaskInstance),
            [
                task_instance_values(sdag, task, dag_run_pk=dag_run_pk, run_id=run_id, map_index=i, now=now)
                for i in range(1, length)
            ],
        )
    ids = session.scalars(
        select(TaskInstance.id)
        .where(TaskInstance.dag_run_id == dag_run_pk, TaskInstance.task_id == task.task_id)
        .order_by(TaskInstance.map_index)
    ).all()
    log.info("expanded %s.%s (run %s) to %d task instances", sdag.dag_id, task.task_id, run_id, length)
    return list(ids)


_ACTIVE = frozenset({TaskInstanceState.QUEUED.value, TaskInstanceState.RUNNING.value})


def revise(
    session: Session,
    sdag: SerializedDag,
    task: SerializedTask,
    *,
    dag_run_pk: int,
    run_id: str,
    now: datetime,
    max_map_length: int,
) -> dict[int, tuple[int, TaskInstanceState]] | None:
    """Expand an already expanded mapped ``task`` again to the length it has now (Airflow's
    ``_revise_map_indexes_if_mapped``), e.g. after a clear when its upstream task pushed a list of another
    length.

    Indices past the new length become ``removed`` (their XComs and ``task_map`` rows are deleted, so a
    downstream task does not read their old values); missing indices are created in state ``none``. A new
    length of 0 makes index 0 ``skipped`` (so downstream tasks follow their trigger rules, as for a first
    expansion to nothing) and the others ``removed``; a length past ``max_map_length`` (not for an all-literal
    input, as at the first expansion) fails the instances in ``none`` (``map_length_exceeded``). An index past
    the new length that is queued or running is removed too, as in Airflow: its supervisor sees the state change
    at its next heartbeat and stops the try (end reason ``externally_set``), and no trigger rule counts it.

    Returns task instance id → (its map index, its new state: ``none`` for created ones), or None when the length is not
    known yet (an upstream task has not finished).
    """
    assert task.expand_input is not None
    length = expand_length(session, sdag, dag_run_pk, task.expand_input)
    if length is None:
        return None
    rows = session.execute(
        select(TaskInstance.id, TaskInstance.map_index, TaskInstance.state).where(
            TaskInstance.dag_run_id == dag_run_pk, TaskInstance.task_id == task.task_id
        )
    ).all()
    changed: dict[int, tuple[int, TaskInstanceState]] = {}
    if length > max_map_length and literal_length(task.expand_input) is None:  # literals are not held to it
        log.error(
            "task %s.%s (run %s) would expand again to %d task instances, more than core.max_map_length = %d",
            sdag.dag_id,
            task.task_id,
            run_id,
            length,
            max_map_length,
        )
        for row in rows:
            if row.state == TaskInstanceState.NONE.value and set_ti_state(
                session,
                row.id,
                TaskInstanceState.NONE,
                TaskInstanceState.FAILED,
                start_date=now,
                end_date=now,
                end_reason=MAP_LENGTH_EXCEEDED,
                updated_at=now,
            ):
                changed[row.id] = (row.map_index, TaskInstanceState.FAILED)
        return changed
    removed: list[int] = []
    for row in rows:
        if row.map_index < length or row.state == TaskInstanceState.REMOVED.value:
            continue
        current = TaskInstanceState(row.state)
        skip = length == 0 and row.map_index == 0 and can_transition(current, TaskInstanceState.SKIPPED)
        new = TaskInstanceState.SKIPPED if skip else TaskInstanceState.REMOVED
        extra: dict[str, Any] = {"end_reason": "skipped"} if new is TaskInstanceState.SKIPPED else {}
        if row.state not in _ACTIVE:  # a try under way keeps its start (the supervisor stops it)
            extra["start_date"] = now
        if set_ti_state(session, row.id, current, new, next_retry_at=None, end_date=now, updated_at=now, **extra):
            changed[row.id] = (row.map_index, new)
            removed.append(row.map_index)
    if removed:
        for model in (XCom, TaskMap):
            session.execute(
                delete(model)
                .where(
                    model.dag_run_id == dag_run_pk,
                    model.task_id == task.task_id,
                    model.map_index.in_(removed),
                )
                .execution_options(synchronize_session=False)
            )
    existing = {row.map_index for row in rows}
    missing = [i for i in range(length) if i not in existing]
    if missing:
        session.execute(
            insert(TaskInstance),
            [
                task_instance_values(sdag, task, dag_run_pk=dag_run_pk, run_id=run_id, map_index=i, now=now)
                for i in missing
            ],
        )
        created = session.execute(
            select(TaskInstance.id, TaskInstance.map_index).where(
                TaskInstance.dag_run_id == dag_run_pk,
                TaskInstance.task_id == task.task_id,
                TaskInstance.map_index.in_(missing),
            )
        ).all()
        changed.update((ti_id, (index, TaskInstanceState.NONE)) for ti_id, index in created)
    if changed:
        log.info(
            "expanded %s.%s (run %s) again to %d task instances: %d removed, %d added",
            sdag.dag_id,
            task.task_id,
            run_id,
            length,
            len(removed),
            len(missing),
        )
    return changed


__all__ = [
    "MAP_LENGTH_EXCEEDED",
    "expand",
    "revise",
    "expand_length",
    "literal_length",
    "new_task_instances",
    "task_instance_values",
    "xcom_sources",
]
