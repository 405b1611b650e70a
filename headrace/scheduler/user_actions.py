"""What a user does to task instances and DAG runs: clear them, mark them success or failed.

The REST API, the web UI and the CLI call these; none of them writes a state
itself. Every state change goes through the compare-and-set of
:mod:`headrace.db.transitions`, so a user's action racing the scheduler or a
supervisor either wins cleanly or is reported as not done.

* :func:`clear_task_instances` — task instances go back to ``none`` (their
  ``try_number`` stays, so the next try is ``try_number + 1``; ``max_tries``
  becomes ``try_number + retries``, so a cleared task instance gets all its
  retries again, as in Airflow). Queued and running task instances are not
  cleared: they are reported in ``not_cleared`` with the reason. A finished
  DAG run goes back to ``queued`` so the scheduler runs it again.
* :func:`mark_task_instances` — set task instances to ``success`` or
  ``failed``. A running try is only changed in the database; its supervisor
  notices and stops it. Marking success also clears the ``failed`` and
  ``upstream_failed`` task instances downstream, so the run can go on
  (Airflow's behaviour); a finished run is put back to ``queued`` to be
  decided again.
* :func:`mark_dag_run` — ``success``: every unfinished task instance becomes
  ``success``; ``failed``: running ones become ``failed`` and the other
  unfinished ones ``skipped`` (Airflow's behaviour). The run's DAG-level
  callbacks are not run for a state a user set (``callbacks_done`` is set).
* :func:`set_paused` — pause or unpause a DAG.

Each of them that changed something wakes the schedulers
(:func:`headrace.db.wakeup.notify_scheduler`, delivered when the caller
commits), so the change is acted on at once, not on the next full pass.

Every function takes an open session (and ``now``, UTC-aware) and never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from headrace.authoring.setup_teardown import clear_closure
from headrace.dagfiles.serialization import SerializedDag
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance, Trigger
from headrace.db.transitions import set_run_state, set_ti_state
from headrace.db.wakeup import notify_scheduler
from headrace.exceptions import DagNotFound, InvalidRequest, TaskNotFound
from headrace.scheduler.external_markers import marker_target, target_run
from headrace.states import TI_ACTIVE, TI_FINISHED, DagRunState, TaskInstanceState, can_transition

TI = TaskInstanceState

RUN_FINISHED: frozenset[DagRunState] = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})
FAILED_STATES: frozenset[TaskInstanceState] = frozenset({TI.FAILED, TI.UPSTREAM_FAILED})
"""What ``only_failed`` clears (Airflow's choice)."""
MARKABLE: frozenset[TaskInstanceState] = frozenset({TI.SUCCESS, TI.FAILED})
"""States a user may mark a task instance or DAG run with."""


@dataclass(frozen=True)
class NotCleared:
    """A task instance that was asked to be cleared but was not."""

    task_id: str
    state: str
    reason: str
    """``queued`` / ``running`` (a try holds it: mark it failed first), or ``state changed`` (lost a race)."""
    dag_id: str | None = None
    """Set for a task instance of another DAG (reached through an ExternalTaskMarker)."""
    run_id: str | None = None
    """Set with ``dag_id``."""


@dataclass
class ClearResult:
    """What :func:`clear_task_instances` did (or, for a dry run, would do)."""

    cleared: list[int] = field(default_factory=list)
    """``task_instance.id`` of the task instances cleared (dry run: that would be cleared)."""
    not_cleared: list[NotCleared] = field(default_factory=list)
    run_requeued: bool = False
    """True if the DAG run was finished and went back to ``queued``."""
    external_runs: list[tuple[str, str]] = field(default_factory=list)
    """``(dag_id, run_id)`` of the other DAGs' runs whose task instances were cleared through
    ExternalTaskMarkers (their ids are in ``cleared`` too)."""


@dataclass
class _MarkerWalk:
    """How deep clearing has gone through ExternalTaskMarkers, and what it has visited."""

    max_depth: int
    depth: int = 0
    visited: set[tuple[str, int, str]] = field(default_factory=set)
    """``(dag_id, dag_run.id, task_id)`` already cleared from a marker."""


def run_dag(session: Session, run: DagRun) -> SerializedDag:
    """The serialized DAG a run was created with (its ``dag_version``).

    Raises ``TaskNotFound`` (404) if that version row is gone (deleted by hand).
    """
    version = session.get(DagVersion, run.dag_version_id)
    if version is None:  # only if rows were deleted by hand
        raise TaskNotFound(f"DAG run {run.run_id!r} of {run.dag_id!r} has no stored DAG version")
    return SerializedDag.from_dict(version.serialized)


def relatives(sdag: SerializedDag, task_ids: Iterable[str], *, upstream: bool, downstream: bool) -> set[str]:
    """``task_ids`` plus, transitively, their upstream and/or downstream tasks in ``sdag``.

    Raises ``TaskNotFound`` for a task id the DAG does not have.
    """
    start = [sdag.get_task(t).task_id for t in task_ids]
    found = set(start)
    for walk_up in [flag for flag, on in ((True, upstream), (False, downstream)) if on]:
        frontier = list(start)
        seen = set(start)
        while frontier:
            task = sdag.tasks[frontier.pop()]
            for nxt in task.upstream_task_ids if walk_up else task.downstream_task_ids:
                if nxt in sdag.tasks and nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        found |= seen
    return found


def _tis(session: Session, run: DagRun, task_ids: Iterable[str] | None = None) -> list[TaskInstance]:
    stmt = (
        select(TaskInstance)
        .where(TaskInstance.dag_run_id == run.id)
        .order_by(TaskInstance.task_id, TaskInstance.map_index)
    )
    if task_ids is not None:
        stmt = stmt.where(TaskInstance.task_id.in_(sorted(set(task_ids))))
    return list(session.scalars(stmt.execution_options(populate_existing=True)))


def _requeue_run(session: Session, run: DagRun, now: datetime) -> bool:
    """Put a finished run back to ``queued`` (callbacks may run again for its new outcome)."""
    state = DagRunState(run.state)
    if state in RUN_FINISHED:
        return set_run_state(
            session,
            run.id,
            state,
            DagRunState.QUEUED,
            queued_at=now,
            start_date=None,
            end_date=None,
            callbacks_done=False,
        )
    session.execute(
        update(DagRun)
        .where(DagRun.id == run.id)
        .values(callbacks_done=False)
        .execution_options(synchronize_session=False)
    )
    return False


def _index_wanted(
    map_indexes: Collection[int] | Mapping[str, Collection[int]] | None, task_id: str, map_index: int
) -> bool:
    if map_indexes is None:
        return True
    if isinstance(map_indexes, Mapping):
        allowed = map_indexes.get(task_id)
        return allowed is None or map_index in allowed
    return map_index < 0 or map_index in map_indexes  # a collection picks indexes of mapped tasks only


def clear_task_instances(
    session: Session,
    run: DagRun,
    task_ids: Sequence[str] | None = None,
    *,
    include_upstream: bool = False,
    include_downstream: bool = False,
    only_failed: bool = False,
    dry_run: bool = False,
    now: datetime,
    map_indexes: Collection[int] | Mapping[str, Collection[int]] | None = None,
    _walk: _MarkerWalk | None = None,
) -> ClearResult:
    """Clear task instances of ``run`` so the scheduler runs them again; see the module docstring.

    A mapped task's instances are all cleared, or only those at ``map_indexes`` when given: a collection
    of map indexes (for every task), or task id → map indexes (for those tasks; the others every index).

    ``task_ids`` None means every task of the run; ``include_upstream`` /
    ``include_downstream`` add their relatives along the DAG's edges (the
    run's own DAG version); a cleared work task brings its relevant setups and
    their teardowns along, as in Airflow
    (:func:`~headrace.authoring.setup_teardown.clear_closure`). ``only_failed`` keeps only ``failed`` and
    ``upstream_failed`` ones. Task instances already ``none`` need nothing.

    An ExternalTaskMarker among the task instances selected also clears the task it marks in the other DAG's
    run at its logical date, with that task's downstream tasks, and so on through their markers (Airflow's
    recursive clear); those task instances are in ``cleared`` / ``not_cleared`` too. Raises ``InvalidRequest``
    when that goes deeper than the first marker's ``recursion_depth`` (a cycle, or too many levels), and
    ``TaskNotFound`` for a task id the run's DAG does not have.
    """
    sdag = run_dag(session, run)
    start = [sdag.get_task(t).task_id for t in (sdag.tasks if task_ids is None else task_ids)]
    wanted = clear_closure(sdag.tasks, start, include_upstream=include_upstream, include_downstream=include_downstream)
    result = ClearResult()
    markers: list[tuple[int, str]] = []
    for ti in _tis(session, run, wanted):
        state = TI(ti.state)
        if only_failed and state not in FAILED_STATES:
            continue
        if not _index_wanted(map_indexes, ti.task_id, ti.map_index):
            continue
        task = sdag.tasks.get(ti.task_id)
        if task is not None and task.external is not None and task.external.get("kind") == "marker":
            markers.append((ti.id, ti.task_id))
        if state is TI.NONE:
            continue
        if state in TI_ACTIVE:
            result.not_cleared.append(NotCleared(ti.task_id, state.value, state.value))
            continue
        if dry_run:
            result.cleared.append(ti.id)
            continue
        retries = sdag.tasks[ti.task_id].retries if ti.task_id in sdag.tasks else 0
        trigger_id = ti.trigger_id  # a deferred one's trigger goes with it
        if set_ti_state(
            session,
            ti.id,
            state,
            TI.NONE,
            max_tries=ti.try_number + retries,
            end_reason=None,
            next_retry_at=None,
            queued_at=None,
            start_date=None,
            end_date=None,
            updated_at=now,
        ):
            result.cleared.append(ti.id)
            if trigger_id is not None:
                session.execute(delete(Trigger).where(Trigger.id == trigger_id))
        else:
            result.not_cleared.append(NotCleared(ti.task_id, state.value, "state changed"))
    if result.cleared and not dry_run:
        result.run_requeued = _requeue_run(session, run, now)
        notify_scheduler(session)
    for ti_id, task_id in markers:
        _clear_marked(session, run, sdag, ti_id, task_id, result, dry_run=dry_run, now=now, walk=_walk)
    return result


def _clear_marked(
    session: Session,
    run: DagRun,
    sdag: SerializedDag,
    ti_id: int,
    task_id: str,
    result: ClearResult,
    *,
    dry_run: bool,
    now: datetime,
    walk: _MarkerWalk | None,
) -> None:
    """Clear what marker ``task_id`` of ``run`` points at (with its downstream), into ``result``."""
    reference = sdag.tasks[task_id].external or {}
    if walk is None:
        walk = _MarkerWalk(max_depth=int(reference.get("recursion_depth") or 10))
    if walk.depth + 1 > walk.max_depth:
        raise InvalidRequest(
            f"Maximum recursion depth {walk.max_depth} reached for ExternalTaskMarker {task_id} of {run.dag_id}. "
            "Attempted to clear too many tasks or there may be a cyclic dependency."
        )
    target = marker_target(session, run, ti_id, task_id, reference, sdag.params)
    other = target_run(session, target)
    if other is None or (target.dag_id, other.id, target.task_id) in walk.visited:
        return
    if not _tis(session, other, [target.task_id]):
        return
    walk.visited.add((target.dag_id, other.id, target.task_id))
    deeper = _MarkerWalk(walk.max_depth, walk.depth + 1, walk.visited)
    found = clear_task_instances(
        session, other, [target.task_id], include_downstream=True, dry_run=dry_run, now=now, _walk=deeper
    )
    if found.cleared or found.not_cleared:
        result.external_runs.append((other.dag_id, other.run_id))
    result.external_runs += [r for r in found.external_runs if r not in result.external_runs]
    result.cleared += found.cleared
    result.not_cleared += [
        n if n.dag_id is not None else NotCleared(n.task_id, n.state, n.reason, other.dag_id, other.run_id)
        for n in found.not_cleared
    ]


def _check_markable(state: str) -> TaskInstanceState:
    if state not in {s.value for s in MARKABLE}:
        raise InvalidRequest(f"a task instance can be marked success or failed, not {state!r}")
    return TI(state)


def mark_task_instances(
    session: Session,
    run: DagRun,
    task_ids: Sequence[str],
    state: str,
    *,
    dry_run: bool = False,
    now: datetime,
    map_indexes: Collection[int] | None = None,
) -> list[int]:
    """Set task instances ``task_ids`` of ``run`` to ``state`` (``success`` or ``failed``); return the ids changed.

    A mapped task's instances are all marked, or only those at ``map_indexes`` when given.

    Task instances already in ``state`` are left alone. A dry run returns the
    ids that would change. Raises ``TaskNotFound`` (unknown task id) and
    ``InvalidRequest`` (another state).
    """
    target = _check_markable(state)
    sdag = run_dag(session, run)
    for task_id in task_ids:
        sdag.get_task(task_id)
    changed: list[int] = []
    for ti in _tis(session, run, task_ids):
        current = TI(ti.state)
        if current is target or not can_transition(current, target):
            continue
        if not _index_wanted(map_indexes, ti.task_id, ti.map_index):
            continue
        if dry_run:
            changed.append(ti.id)
            continue
        values: dict[str, Any] = {"next_retry_at": None, "updated_at": now}
        if ti.end_date is None or current not in TI_FINISHED:
            values["end_date"] = now
        if set_ti_state(session, ti.id, current, target, **values):
            changed.append(ti.id)
    if changed and not dry_run:
        marked = {ti.task_id for ti in _tis(session, run) if ti.id in changed}
        if target is TI.SUCCESS:
            downstream = relatives(sdag, marked, upstream=False, downstream=True) - marked
            if downstream:
                clear_task_instances(session, run, sorted(downstream), only_failed=True, now=now)
        _requeue_run(session, run, now)
        notify_scheduler(session)
    return changed


def mark_dag_run(session: Session, run: DagRun, state: str, *, now: datetime) -> list[int]:
    """Mark ``run`` ``success`` or ``failed`` with its unfinished task instances; return the ids of those changed.

    Raises ``InvalidRequest`` for another state. A run already in ``state``
    is left as it is (its task instances are still settled).
    """
    if state not in {s.value for s in RUN_FINISHED}:
        raise InvalidRequest(f"a DAG run can be marked success or failed, not {state!r}")
    target = DagRunState(state)
    changed: list[int] = []
    for ti in _tis(session, run):
        current = TI(ti.state)
        if current in TI_FINISHED:
            continue
        if target is DagRunState.SUCCESS:
            new = TI.SUCCESS
        else:
            new = TI.FAILED if current is TI.RUNNING else TI.SKIPPED
        if set_ti_state(session, ti.id, current, new, next_retry_at=None, end_date=now, updated_at=now):
            changed.append(ti.id)
    current_run = DagRunState(run.state)
    if current_run is not target:
        set_run_state(
            session, run.id, current_run, target, end_date=now, callbacks_done=True, start_date=run.start_date or now
        )
    if changed or current_run is not target:  # a max_active_runs slot may have freed
        notify_scheduler(session)
    return changed


def set_paused(session: Session, dag_id: str, paused: bool) -> DagModel:
    """Pause (no new scheduled runs; running tries finish) or unpause ``dag_id``; return its ``dag`` row.

    Raises ``DagNotFound``.
    """
    dag = session.get(DagModel, dag_id)
    if dag is None:
        raise DagNotFound(f"DAG {dag_id!r} not found", dag_id=dag_id)
    if dag.is_paused != paused:
        dag.is_paused = paused
        session.flush()
        notify_scheduler(session)
    return dag


__all__ = [
    "FAILED_STATES",
    "MARKABLE",
    "RUN_FINISHED",
    "ClearResult",
    "NotCleared",
    "clear_task_instances",
    "mark_dag_run",
    "mark_task_instances",
    "relatives",
    "run_dag",
    "set_paused",
]
