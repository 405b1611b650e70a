"""Which task instances may run, and handing them to the executor.

:func:`examine_runs` decides, for every running DAG run, what each task
instance in state ``none`` becomes, from its direct upstream states and its
trigger rule (``headrace.authoring.trigger_rules.evaluate``):

=================  =================================
decision           new state
=================  =================================
``RUN``            ``scheduled``
``SKIP``           ``skipped``
``UPSTREAM_FAILED`` ``upstream_failed``
``WAIT``           stays ``none``
=================  =================================

An expanded mapped task's instance that may run (e.g. after a clear) first has its task expanded again to
the length it has now (:func:`headrace.scheduler.mapping.revise`, once per task per pass): indices past it
become ``removed``, missing ones are created. A ``removed`` upstream instance is not counted by trigger rules.

A task with ``depends_on_past`` that would be scheduled stays ``none``
while the DAG's previous run holds it (:mod:`headrace.scheduler.past`).
Tasks are visited in topological order with the run's states kept in
memory, so a cascade (``a`` failed → ``b`` upstream_failed → ``c``
upstream_failed) settles in one pass. Task instances ``up_for_retry`` whose
``next_retry_at`` has come go back to ``scheduled``, and so do sensors
``up_for_reschedule`` whose ``reschedule_date`` has come (their next poke). A new try of a task that starts
in the triggerer (``start_from_trigger``) does not stay ``scheduled``: the scheduler defers it at once, with no
process (:mod:`headrace.scheduler.start_trigger`).

:func:`queue_ready` moves scheduled task instances to ``queued`` in priority
order (``priority_weight`` descending, then the run's logical date) within:

* the executor's open slots and ``core.parallelism`` (queued + running over
  all DAGs, so tries adopted after a restart count too);
* each pool's free slots (``pool.slots`` minus the ``pool_slots`` of queued
  and running task instances in it; a pool of -1 slots has no limit, as in Airflow);
* each DAG's ``max_active_tasks`` (its queued + running task instances);
* each task's ``max_active_tis_per_dag`` (its queued + running instances over all runs) and
  ``max_active_tis_per_dagrun`` (in the instance's run), as in Airflow — for a mapped task, its indices.

These counts are over every scheduler: with several schedulers on PostgreSQL, counting and queueing run in
one short critical section (:func:`headrace.db.locks.hold`, an advisory lock held until the queueing commit),
so two schedulers never spend the same free slot. The executor's open slots are this scheduler's own.

A task instance naming a pool that does not exist stays ``scheduled`` and a
warning is logged once per pool (Airflow's behaviour): creating the pool lets
it run. The transition table does not allow ``scheduled → failed`` anyway.

The ``scheduled → queued`` change (``try_number + 1``, ``queued_at = now``, a new
``external_executor_id`` — the id the executor's message carries; a sensor's next poke in
reschedule mode, which still carries its ``reschedule_date``, keeps its ``try_number``) is
committed *before* ``executor.queue`` is called, so the supervisor that claims
the try always finds the committed row.
"""

from __future__ import annotations

import heapq
import logging
import math
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from headrace.authoring.trigger_rules import Decision, UpstreamCounts, evaluate, evaluate_setups
from headrace.dagfiles.serialization import SerializedDag, SerializedTask
from headrace.db import locks, queries
from headrace.db.engine import Database
from headrace.db.skip_marks import skipped_by_upstream
from headrace.db.transitions import requeue_ti, set_ti_state, set_ti_states_each, set_tis_state
from headrace.scheduler import mapping
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.past import PastCheck
from headrace.scheduler.start_trigger import TriggerStarter
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.request import TryRequest

log = logging.getLogger(__name__)

_DECISION_STATE = {Decision.RUN: TI.SCHEDULED, Decision.SKIP: TI.SKIPPED, Decision.UPSTREAM_FAILED: TI.UPSTREAM_FAILED}


def upstream_counts(
    upstream_ids: frozenset[str],
    states: Mapping[str, str | Sequence[str]],
    setup_ids: frozenset[str] = frozenset(),
) -> UpstreamCounts:
    """Count the states of the direct upstream task instances of ``upstream_ids`` in one run.

    ``states``: task_id → its state, or the states of each of its task instances (a mapped task has one per
    map index, and each counts, as in Airflow). A task missing from ``states`` counts as one in ``none``.
    A ``removed`` instance does not count at all (Airflow leaves it out of a mapped instance's counts).
    ``setup_ids``: which of them are setup tasks (counted apart too, for ``all_done_setup_success``).
    """
    c: Counter[str] = Counter()
    setups: Counter[str] = Counter()
    total = 0
    for tid in upstream_ids:
        found = states.get(tid, TI.NONE.value)
        values = [v for v in ([found] if isinstance(found, str) else found) if v != TI.REMOVED.value]
        c.update(values)
        if tid in setup_ids:
            setups.update(values)
        total += len(values)
    return UpstreamCounts(
        total=total,
        success=c[TI.SUCCESS.value],
        failed=c[TI.FAILED.value],
        upstream_failed=c[TI.UPSTREAM_FAILED.value],
        skipped=c[TI.SKIPPED.value],
        setups=sum(setups.values()),
        setup_success=setups[TI.SUCCESS.value],
        setup_skipped=setups[TI.SKIPPED.value],
    )


class _RunStates:
    """The states of one run's task instances while it is examined: by task, and by (task, map index).

    Either every instance of the run is given (``tis``), or — a partial examination — none at first, and
    :meth:`load` reads the instances of the tasks about to be decided and of those their decision reads.
    """

    def __init__(self, tis: list[queries.TiDecisionRow], *, loaded: set[str] | None = None) -> None:
        self.rows: dict[str, list[queries.TiDecisionRow]] = {}
        self.state: dict[int, str] = {}
        self.loaded = loaded
        """The task ids whose instances are here (None: all of the run's)."""
        for ti in tis:
            self.rows.setdefault(ti.task_id, []).append(ti)
            self.state[ti.id] = ti.state

    def load(self, session: Session, dag_run_pk: int, task_ids: Iterable[str]) -> None:
        """Read the instances of those of ``task_ids`` not read yet (one query per 900 tasks)."""
        if self.loaded is None:
            return
        missing = set(task_ids) - self.loaded
        if not missing:
            return
        for ti in queries.ti_rows_of_run_tasks(session, dag_run_pk, missing):
            self.rows.setdefault(ti.task_id, []).append(ti)
            self.state[ti.id] = ti.state
        self.loaded |= missing

    def of(self, task_id: str) -> list[str]:
        return [self.state[ti.id] for ti in self.rows.get(task_id, [])]

    def at(self, task_id: str, map_index: int) -> list[str]:
        """The state of ``task_id``'s instance at ``map_index`` (its ``-1`` one while it is not expanded)."""
        rows = self.rows.get(task_id, [])
        exact = [self.state[ti.id] for ti in rows if ti.map_index == map_index]
        return exact or [self.state[ti.id] for ti in rows if ti.map_index < 0] or [TI.NONE.value]

    def counts(
        self,
        sdag: SerializedDag,
        task_id: str,
        map_index: int,
        upstream_ids: frozenset[str],
        setup_ids: frozenset[str] = frozenset(),
    ) -> UpstreamCounts:
        """Counts of the task instances of ``upstream_ids`` as seen from ``task_id`` at ``map_index``: every
        instance of each, except a task of the same mapped task group, of which only the same map index counts
        (Airflow's rule)."""
        group = sdag.tasks[task_id].mapped_group if map_index >= 0 else None
        states: dict[str, str | list[str]] = {}
        for up in upstream_ids:
            same = group is not None and up in sdag.tasks and sdag.tasks[up].mapped_group == group
            states[up] = self.at(up, map_index) if same else self.of(up)
        return upstream_counts(upstream_ids, states, setup_ids)


def decide(sdag: SerializedDag, task_id: str, run_states: _RunStates, map_index: int = -1) -> Decision:
    """What the task instance of ``task_id`` at ``map_index`` may do now, given its run's states.

    A non-teardown task whose indirect relevant setups have not all
    succeeded is held, skipped or upstream_failed by them first (Airflow's
    setup constraint); then its trigger rule decides.
    """
    task = sdag.tasks[task_id]
    indirect = sdag.indirect_setups.get(task_id)
    if indirect:
        constraint = evaluate_setups(run_states.counts(sdag, task_id, map_index, indirect))
        if constraint is not Decision.RUN:
            return constraint
    setup_ids = frozenset(t for t in task.upstream_task_ids if t in sdag.tasks and sdag.tasks[t].is_setup)
    return evaluate(task.trigger_rule, run_states.counts(sdag, task_id, map_index, task.upstream_task_ids, setup_ids))


class _Visits:
    """The order tasks are decided in one examination: every task of the run in topological order, or — given
    the tasks whose tries ended — their dependents, and the dependents of each decided task that has finished
    (skipped, upstream_failed, or finished meanwhile, e.g. skipped by a branch), in topological order.

    Iterating yields task ids; before one is yielded, its instances and those its decision reads (upstream,
    indirect setups, the tasks a mapped task group's length comes from) are loaded into ``run_states``.
    """

    def __init__(
        self,
        session: Session,
        sdag: SerializedDag,
        cache: DagCache,
        run: queries.RunToExamine,
        run_states: _RunStates,
        ended: Set[str] | None,
    ) -> None:
        self.session, self.sdag, self.run, self.run_states = session, sdag, run, run_states
        self.order = cache.order(session, run.dag_version_id)
        self.ended = ended
        if ended is not None:
            self.position = cache.position(session, run.dag_version_id)
            self.dependents = cache.dependents(session, run.dag_version_id)
            self.heap: list[int] = []
            self.queued: set[str] = set()

    def __iter__(self) -> Iterator[str]:
        if self.ended is None:
            yield from self.order
            return
        self._push(t for e in self.ended for t in self.dependents.get(e, ()))
        while self.heap:
            task_id = self.order[heapq.heappop(self.heap)]
            yield task_id
            states = self.run_states.of(task_id)
            if states and any(TI(state).is_finished for state in states):
                self._push(self.dependents.get(task_id, ()))

    def _push(self, task_ids: Iterable[str]) -> None:
        new = [t for t in task_ids if t not in self.queued and t in self.position]
        if not new:
            return
        self.queued.update(new)
        needs: set[str] = set(new)
        for tid in new:
            task = self.sdag.tasks[tid]
            needs |= task.upstream_task_ids
            needs |= self.sdag.indirect_setups.get(tid, frozenset())
            needs |= mapping.xcom_sources(task.expand_input)
        self.run_states.load(self.session, self.run.id, needs)
        for tid in new:
            heapq.heappush(self.heap, self.position[tid])


def examine_run(
    session: Session,
    run: queries.RunToExamine,
    tis: list[queries.TiDecisionRow],
    now: datetime,
    cache: DagCache,
    *,
    max_map_length: int = 1024,
    starter: TriggerStarter | None = None,
    ended: Set[str] | None = None,
) -> int:
    """Decide the task instances of one running run; return how many changed state.

    ``ended`` (None: decide every task instance of the run) names tasks whose tries ended since the run was
    last examined, when nothing else in the run changed: then only the tasks whose decision reads their
    states are decided (:meth:`DagCache.dependents`), and theirs in turn when they end without running (a
    skip or an upstream failure cascades), reading only the instances those decisions need — the cost follows
    what the ended tries unblock, not the run's size. ``tis`` is then ignored (pass ``[]``).

    ``run`` has ``dag_version_id``; ``tis`` are rows with ``id, task_id, state, next_retry_at, map_index,
    reschedule_date``
    (see ``queries.ti_rows_of_runs``). A mapped task's ``-1`` instance that may run is expanded first
    (:func:`headrace.scheduler.mapping.expand`, ``max_map_length``: ``core.max_map_length``) and its
    instances are decided in the same pass. ``starter``: defers the new tries of tasks that start in the
    triggerer (None: they stay ``scheduled`` and run ``execute`` in a worker).
    """
    sdag = cache.get(session, run.dag_version_id)
    run_states = _RunStates(tis, loaded=None if ended is None else set())
    changed = 0
    new_tries: list[int] = []  # of tasks that start in the triggerer
    revised: set[str] = set()
    past = PastCheck(session, sdag, run.id)
    for ti in tis:
        due = ti.state == TI.UP_FOR_RETRY.value and (ti.next_retry_at is None or ti.next_retry_at <= now)
        if due and set_ti_state(session, ti.id, TI.UP_FOR_RETRY, TI.SCHEDULED, next_retry_at=None, updated_at=now):
            run_states.state[ti.id] = TI.SCHEDULED.value
            changed += 1
            if ti.task_id in sdag.tasks and sdag.tasks[ti.task_id].start_trigger is not None:
                new_tries.append(ti.id)
        # A sensor's next poke: its reschedule_date stays (the poke continues the same try_number).
        poke = ti.state == TI.UP_FOR_RESCHEDULE.value and (ti.reschedule_date is None or ti.reschedule_date <= now)
        if poke and set_ti_state(session, ti.id, TI.UP_FOR_RESCHEDULE, TI.SCHEDULED, updated_at=now):
            run_states.state[ti.id] = TI.SCHEDULED.value
            changed += 1
    visits = _Visits(session, sdag, cache, run, run_states, ended)
    for task_id in visits:
        task = sdag.tasks[task_id]
        todo = deque(run_states.rows.get(task_id, []))
        # Every expanded index of a mapped task outside a mapped task group has the same upstream, hence the
        # same decision (depends_on_past aside: the previous run's index may differ).
        uniform = task.is_mapped and task.mapped_group is None and not task.depends_on_past
        while todo:
            pending = todo.popleft()
            if run_states.state[pending.id] != TI.NONE.value:
                continue
            decision = decide(sdag, task_id, run_states, pending.map_index)
            if task.wait_for_past_depends_before_skipping and task.depends_on_past:
                held = _skip_after_past(session, task, pending, decision, past)
                if held is None:
                    continue
                decision = held
            # A task of a mapped task group expands as soon as the group's length is known, before its own
            # upstream in the group is done (Airflow revises every unfinished mapped task): each index then
            # waits for the same index upstream, and a branch at one index can skip just that index.
            early = (
                decision is Decision.WAIT
                and task.mapped_group is not None
                and pending.map_index < 0
                and _sources_finished(run_states, mapping.xcom_sources(task.expand_input))
            )  # no query while what the group maps over is still running: the states at hand say so
            if not early and (
                decision is Decision.WAIT or (decision is Decision.RUN and past.reason(task_id) is not None)
            ):
                if uniform:  # so do its other indices
                    todo.clear()
                continue
            if (decision is Decision.RUN or early) and task.is_mapped and pending.map_index < 0:
                outcome = mapping.expand(
                    session,
                    sdag,
                    task,
                    pending.id,
                    dag_run_pk=pending.dag_run_id,
                    run_id=run.run_id,
                    now=now,
                    max_map_length=max_map_length,
                )
                if isinstance(outcome, TI):
                    run_states.state[pending.id] = outcome.value
                    changed += 1
                elif outcome is not None:
                    rows = [
                        queries.TiDecisionRow(ti_id, pending.dag_run_id, task_id, TI.NONE.value, None, index)
                        for index, ti_id in enumerate(outcome)
                    ]
                    run_states.rows[task_id] = rows
                    run_states.state.update((r.id, TI.NONE.value) for r in rows)
                    if task.mapped_group is None:  # every index has the same upstream: schedule them at once
                        changed += _schedule_all(session, run_states, outcome, now)
                    todo = deque(rows)
                continue
            if decision is Decision.RUN and task.is_mapped and task_id not in revised:
                # an expanded instance about to run (e.g. cleared): expand the task again to its length now
                revision = mapping.revise(
                    session,
                    sdag,
                    task,
                    dag_run_pk=pending.dag_run_id,
                    run_id=run.run_id,
                    now=now,
                    max_map_length=max_map_length,
                )
                if revision is None:
                    continue
                revised.add(task_id)
                changed += _apply_revision(run_states, task_id, pending.dag_run_id, revision, todo)
                if run_states.state[pending.id] != TI.NONE.value:
                    continue
            new = _DECISION_STATE[decision]
            extra: dict[str, Any] = (
                {} if new is TI.SCHEDULED else {"start_date": now, "end_date": now, "end_reason": "trigger_rule"}
            )
            if uniform:  # the instances still waiting move together, in one statement per 900
                same = [pending.id] + [r.id for r in todo if run_states.state[r.id] == TI.NONE.value]
                todo.clear()
                moved = _move_all(session, run_states, same, new, updated_at=now, **extra)
                changed += len(moved)
                if new is TI.SCHEDULED and task.start_trigger is not None:
                    new_tries.extend(moved)
            elif set_ti_state(session, pending.id, TI.NONE, new, updated_at=now, **extra):
                run_states.state[pending.id] = new.value
                changed += 1
                if new is TI.SCHEDULED and task.start_trigger is not None:
                    new_tries.append(pending.id)
    if starter is not None and new_tries:
        starter.start(session, sdag, new_tries, now)
    return changed


def _skip_after_past(
    session: Session, task: SerializedTask, pending: queries.TiDecisionRow, decision: Decision, past: PastCheck
) -> Decision | None:
    """``wait_for_past_depends_before_skipping`` (Airflow's semantics): a task instance its trigger rule, a branch
    or a short circuit (a skip mark, :mod:`headrace.db.skip_marks`) would skip is skipped only once
    ``depends_on_past`` lets it go; None while the previous run holds it (it stays in ``none``)."""
    marked = decision is Decision.RUN and skipped_by_upstream(
        session, pending.dag_run_id, task.task_id, task.upstream_task_ids, {-1, pending.map_index}
    )
    if not (marked or decision is Decision.SKIP):
        return decision
    return Decision.SKIP if past.reason(task.task_id) is None else None


def _apply_revision(
    run_states: _RunStates,
    task_id: str,
    dag_run_pk: int,
    revision: Mapping[int, tuple[int, TI]],
    todo: deque[queries.TiDecisionRow],
) -> int:
    """Record a :func:`mapping.revise` outcome in ``run_states``; new instances join ``todo``; return how many
    existing instances changed state."""
    known = {row.id for row in run_states.rows.get(task_id, [])}
    changed = 0
    for ti_id, (index, state) in revision.items():
        if ti_id in known:
            changed += 1
        else:
            row = queries.TiDecisionRow(ti_id, dag_run_pk, task_id, state.value, None, index)
            run_states.rows.setdefault(task_id, []).append(row)
            todo.append(row)
        run_states.state[ti_id] = state.value
    return changed


def _sources_finished(run_states: _RunStates, task_ids: set[str]) -> bool:
    """True when every instance of each of ``task_ids`` in this run has finished."""
    return all(TI(state).is_finished for task_id in task_ids for state in run_states.of(task_id))


def _move_all(session: Session, run_states: _RunStates, ti_ids: list[int], new: TI, **values: Any) -> list[int]:
    """``none → new`` for ``ti_ids`` (one UPDATE per 900 ids); return the ids that moved (another writer may
    have moved some meanwhile: those are read back)."""
    moved: list[int] = []
    for start in range(0, len(ti_ids), 900):
        chunk = ti_ids[start : start + 900]
        if set_tis_state(session, chunk, TI.NONE, new, **values) == len(chunk):
            run_states.state.update((ti_id, new.value) for ti_id in chunk)
            moved.extend(chunk)
            continue
        for row in queries.ti_rows(session, chunk):
            run_states.state[row.id] = row.state
            if row.state == new.value:
                moved.append(row.id)
    return moved


def _schedule_all(session: Session, run_states: _RunStates, ti_ids: list[int], now: datetime) -> int:
    """``none → scheduled`` for a just expanded mapped task's instances, in one statement; return how many."""
    moved = set_tis_state(session, ti_ids, TI.NONE, TI.SCHEDULED, updated_at=now)
    if moved == len(ti_ids):
        run_states.state.update((ti_id, TI.SCHEDULED.value) for ti_id in ti_ids)
    else:  # another writer moved some meanwhile: read back where each one is
        for row in queries.ti_rows(session, ti_ids):
            run_states.state[row.id] = row.state
    return moved


def examine_runs(
    session: Session,
    now: datetime,
    *,
    cache: DagCache,
    run_ids: Iterable[int] | None = None,
    max_map_length: int = 1024,
    starter: TriggerStarter | None = None,
    ended: Mapping[int, Set[str]] | None = None,
) -> int:
    """Decide the task instances of running runs of unpaused DAGs; return how many changed state.

    ``run_ids`` (None: every running run) limits the pass to those runs. Runs
    with no task instance in ``none`` or ``up_for_retry`` are not loaded.
    ``max_map_length``: ``core.max_map_length``; ``starter``: see :func:`examine_run`. ``ended``:
    ``dag_run.id`` → the tasks whose tries ended in that run, for runs in which nothing else changed since
    they were last examined (see :func:`examine_run`); the other runs are examined whole.
    """
    runs = queries.runs_to_examine(session, run_ids)
    ended = ended or {}
    tis_by_run: dict[int, list[queries.TiDecisionRow]] = {}
    for ti in queries.ti_rows_of_runs(session, [r.id for r in runs if r.id not in ended]):
        tis_by_run.setdefault(ti.dag_run_id, []).append(ti)
    return sum(
        examine_run(
            session,
            run,
            tis_by_run.get(run.id, []),
            now,
            cache,
            max_map_length=max_map_length,
            starter=starter,
            ended=ended.get(run.id),
        )
        for run in runs
    )


class QueueLimits:
    """Free capacity while queueing: executor slots, pools, max_active_tasks per DAG, and the tasks'
    ``max_active_tis_per_dag`` / ``max_active_tis_per_dagrun``."""

    def __init__(self, session: Session, open_slots: int, parallelism: int) -> None:
        # An unlimited pool (-1 slots, Airflow's) never runs out: infinity minus any slots taken stays infinity.
        self.pool_free: dict[str, float] = {
            name: math.inf if slots == -1 else slots for name, slots in queries.pool_sizes(session).items()
        }
        self.dag_active: dict[str, int] = {}
        active = 0
        for dag_id, pool, count, slots in queries.active_ti_usage(session):
            active += int(count)
            self.pool_free[pool] = self.pool_free.get(pool, 0) - int(slots or 0)
            self.dag_active[dag_id] = self.dag_active.get(dag_id, 0) + count
        self.free = max(0, min(open_slots, parallelism - active))
        self.dag_limit: dict[str, int] = {}
        self.task_limit: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        """(dag_id, task_id) → (max_active_tis_per_dag, max_active_tis_per_dagrun) of tasks that set one."""
        self.task_active: Counter[tuple[str, str]] = Counter()
        self.run_task_active: Counter[tuple[int, str]] = Counter()

    def load_task_limits(self, session: Session, candidates: list[queries.ScheduledTi], cache: DagCache) -> None:
        """Read the per-task limits of the candidates' tasks and how many of their instances are active."""
        for ti in candidates:
            if ti.dag_version_id is None or (ti.dag_id, ti.task_id) in self.task_limit:
                continue
            task = cache.get(session, ti.dag_version_id).tasks.get(ti.task_id)
            if task is not None and (task.max_active_tis_per_dag or task.max_active_tis_per_dagrun):
                self.task_limit[(ti.dag_id, ti.task_id)] = (task.max_active_tis_per_dag, task.max_active_tis_per_dagrun)
        if not self.task_limit:
            return
        dag_ids = {d for d, _ in self.task_limit}
        task_ids = {t for _, t in self.task_limit}
        for dag_id, task_id, run_pk, count in queries.active_tis_of_tasks(session, dag_ids, task_ids):
            self.task_active[(dag_id, task_id)] += count
            self.run_task_active[(run_pk, task_id)] += count

    def why_not(self, ti: queries.ScheduledTi) -> str | None:
        """None if ``ti`` fits now, else the limit that holds it back."""
        if self.free <= 0:
            return "parallelism"
        if ti.pool not in self.pool_free:
            return "unknown pool"
        if self.pool_free[ti.pool] < ti.pool_slots:
            return "pool"
        if self.dag_active.get(ti.dag_id, 0) >= self.dag_limit.get(ti.dag_id, 0):
            return "max_active_tasks"
        per_dag, per_run = self.task_limit.get((ti.dag_id, ti.task_id), (None, None))
        if per_dag is not None and self.task_active[(ti.dag_id, ti.task_id)] >= per_dag:
            return "max_active_tis_per_dag"
        if per_run is not None and self.run_task_active[(ti.dag_run_id, ti.task_id)] >= per_run:
            return "max_active_tis_per_dagrun"
        return None

    def take(self, ti: queries.ScheduledTi) -> None:
        """Count ``ti`` as queued."""
        self.free -= 1
        self.pool_free[ti.pool] -= ti.pool_slots
        self.dag_active[ti.dag_id] = self.dag_active.get(ti.dag_id, 0) + 1
        self.task_active[(ti.dag_id, ti.task_id)] += 1
        self.run_task_active[(ti.dag_run_id, ti.task_id)] += 1


class Queueing(Protocol):
    """The part of the executor interface queue_ready uses (see ``headrace.executors.base``)."""

    def open_slots(self) -> int: ...
    def queue(self, request: TryRequest) -> None: ...


class Queuer:
    """Moves scheduled task instances to queued and hands them to the executor.

    Holds the set of unknown pools already warned about, so the warning is
    logged once per pool, not once per loop.
    """

    def __init__(
        self,
        parallelism: int,
        *,
        on_queued: Callable[[TryRequest], None] | None = None,
        cache: DagCache | None = None,
    ) -> None:
        self.parallelism = parallelism
        self.cache = cache or DagCache()
        """Serialized DAGs by version: the per-task limits (``max_active_tis_per_dag(run)``) come from them."""
        self.on_queued = on_queued
        """Called with each request the executor accepted (the scheduler emits ``on_try_queued``)."""
        self._warned_pools: set[str] = set()
        self.job_id: int | None = None
        """The ``scheduler_job`` queueing (stamped on each try as ``queued_by_job_id``), once registered."""

    def queue_ready(self, db: Database, executor: Queueing, now: datetime, *, only_run: int | None = None) -> int:
        """Queue as many scheduled task instances as the limits allow; return how many were queued.

        ``only_run`` (a ``dag_run.id``, ``dags test``) queues that run's task instances alone."""
        open_slots = executor.open_slots()
        if open_slots <= 0:
            return 0
        requests: list[TryRequest] = []
        in_flight = getattr(executor, "has", None)
        with db.session() as session:
            # Several schedulers (PostgreSQL): count and spend the limits one at a time, until this commit.
            locks.hold(session, locks.Section.QUEUE_TIS)
            limits = QueueLimits(session, open_slots, self.parallelism)
            if limits.free <= 0:
                return 0
            candidates = queries.scheduled_tis(session, limit=max(limits.free * 4, 64), only_run=only_run)
            limits.dag_limit = {ti.dag_id: ti.max_active_tasks for ti in candidates}
            limits.load_task_limits(session, candidates, self.cache)
            changes: list[tuple[int, int, dict[str, Any]]] = []
            for ti in candidates:
                reason = limits.why_not(ti)
                if reason == "parallelism":
                    break
                if reason == "unknown pool" and ti.pool not in self._warned_pools:
                    self._warned_pools.add(ti.pool)
                    log.warning(
                        "task %s.%s asks for pool %r, which does not exist; it stays scheduled "
                        "until the pool is created",
                        ti.dag_id,
                        ti.task_id,
                        ti.pool,
                    )
                if reason is not None:
                    continue
                # A sensor's next poke (reschedule_date set) and a deferred task resuming (next_method set) continue
                # the current try; anything else is a new try.
                poke = (ti.reschedule_date is not None or ti.next_method is not None) and ti.try_number > 0
                if poke and in_flight is not None and in_flight(ti.id, ti.try_number):
                    continue  # the previous poke's supervisor is still being reaped: the same key must not overlap
                try_number = ti.try_number if poke else ti.try_number + 1
                external_id = str(uuid.uuid4())
                limits.take(ti)
                changes.append(
                    (
                        ti.id,
                        ti.try_number,
                        {
                            "try_number": try_number,
                            "queued_at": now,
                            "updated_at": now,
                            "end_reason": None,
                            "external_executor_id": external_id,
                            "queued_by_job_id": self.job_id,
                        },
                    )
                )
                requests.append(
                    TryRequest(
                        ti_id=ti.id,
                        dag_id=ti.dag_id,
                        run_id=ti.run_id,
                        task_id=ti.task_id,
                        try_number=try_number,
                        fileloc=ti.fileloc,
                        queue=ti.queue,
                        priority_weight=ti.priority_weight,
                        map_index=ti.map_index,
                        external_executor_id=external_id,
                    )
                )
            # One statement for the pass (an executemany: one round trip on PostgreSQL). Each compare-and-set wins:
            # the candidates were read under this transaction's row locks (PostgreSQL) or write lock (SQLite).
            set_ti_states_each(session, changes, TI.SCHEDULED, TI.QUEUED)
        # Committed: a supervisor claiming any of these tries now finds it queued.
        queued = 0
        for request in requests:
            try:
                executor.queue(request)
                queued += 1
                if self.on_queued is not None:
                    self.on_queued(request)
            except Exception:  # noqa: BLE001 — give the try back rather than leave it stuck in queued
                log.exception(
                    "executor refused try %s of %s.%s; it goes back to scheduled",
                    request.try_number,
                    request.dag_id,
                    request.task_id,
                )
                with db.session() as session:
                    requeue_ti(session, request.ti_id, request.try_number)
        return queued


def queue_ready(db: Database, executor: Queueing, now: datetime, *, parallelism: int) -> int:
    """One-off form of :meth:`Queuer.queue_ready` (tests, CLI)."""
    return Queuer(parallelism).queue_ready(db, executor, now)


__all__ = [
    "decide",
    "QueueLimits",
    "Queuer",
    "Queueing",
    "examine_run",
    "examine_runs",
    "queue_ready",
    "upstream_counts",
]
