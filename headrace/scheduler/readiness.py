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

A task with ``depends_on_past`` that would be scheduled stays ``none``
while the DAG's previous run holds it (:mod:`headrace.scheduler.past`).
Tasks are visited in topological order with the run's states kept in
memory, so a cascade (``a`` failed → ``b`` upstream_failed → ``c``
upstream_failed) settles in one pass. Task instances ``up_for_retry`` whose
``next_retry_at`` has come go back to ``scheduled``.

:func:`queue_ready` moves scheduled task instances to ``queued`` in priority
order (``priority_weight`` descending, then the run's logical date) within:

* the executor's open slots and ``core.parallelism`` (queued + running over
  all DAGs, so tries adopted after a restart count too);
* each pool's free slots (``pool.slots`` minus the ``pool_slots`` of queued
  and running task instances in it);
* each DAG's ``max_active_tasks`` (its queued + running task instances).

A task instance naming a pool that does not exist stays ``scheduled`` and a
warning is logged once per pool (Airflow's behaviour): creating the pool lets
it run. The transition table does not allow ``scheduled → failed`` anyway.

The ``scheduled → queued`` change (``try_number + 1``, ``queued_at = now``) is
committed *before* ``executor.queue`` is called, so the supervisor that claims
the try always finds the committed row.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from headrace.authoring.trigger_rules import Decision, UpstreamCounts, evaluate, evaluate_setups
from headrace.dagfiles.serialization import SerializedDag
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.transitions import requeue_ti, set_ti_state
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.past import PastCheck
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.request import TryRequest

log = logging.getLogger(__name__)

_DECISION_STATE = {Decision.RUN: TI.SCHEDULED, Decision.SKIP: TI.SKIPPED, Decision.UPSTREAM_FAILED: TI.UPSTREAM_FAILED}


def upstream_counts(
    upstream_ids: frozenset[str], states: dict[str, str], setup_ids: frozenset[str] = frozenset()
) -> UpstreamCounts:
    """Count the states of the direct upstream tasks ``upstream_ids`` in one run (``states``: task_id → state).

    ``setup_ids``: which of them are setup tasks (counted apart too, for ``all_done_setup_success``).
    """
    c = Counter(states.get(tid, TI.NONE.value) for tid in upstream_ids)
    setups = Counter(states.get(tid, TI.NONE.value) for tid in upstream_ids & setup_ids)
    return UpstreamCounts(
        total=len(upstream_ids),
        success=c[TI.SUCCESS.value],
        failed=c[TI.FAILED.value],
        upstream_failed=c[TI.UPSTREAM_FAILED.value],
        skipped=c[TI.SKIPPED.value],
        setups=sum(setups.values()),
        setup_success=setups[TI.SUCCESS.value],
        setup_skipped=setups[TI.SKIPPED.value],
    )


def decide(sdag: SerializedDag, task_id: str, states: dict[str, str]) -> Decision:
    """What task ``task_id`` of a run with these states (task_id → state) may do now.

    A non-teardown task whose indirect relevant setups have not all
    succeeded is held, skipped or upstream_failed by them first (Airflow's
    setup constraint); then its trigger rule decides.
    """
    task = sdag.tasks[task_id]
    indirect = sdag.indirect_setups.get(task_id)
    if indirect:
        constraint = evaluate_setups(upstream_counts(indirect, states))
        if constraint is not Decision.RUN:
            return constraint
    setup_ids = frozenset(t for t in task.upstream_task_ids if t in sdag.tasks and sdag.tasks[t].is_setup)
    return evaluate(task.trigger_rule, upstream_counts(task.upstream_task_ids, states, setup_ids))


def examine_run(
    session: Session, run: queries.RunToExamine, tis: list[queries.TiDecisionRow], now: datetime, cache: DagCache
) -> int:
    """Decide the task instances of one running run; return how many changed state.

    ``run`` has ``dag_version_id``; ``tis`` are rows with ``id, task_id, state, next_retry_at``
    (see ``queries.ti_rows_of_runs``).
    """
    sdag = cache.get(session, run.dag_version_id)
    by_task = {ti.task_id: ti for ti in tis}
    states = {ti.task_id: ti.state for ti in tis}
    changed = 0
    past = PastCheck(session, sdag, run.id)
    for ti in tis:
        due = ti.state == TI.UP_FOR_RETRY.value and (ti.next_retry_at is None or ti.next_retry_at <= now)
        if due and set_ti_state(session, ti.id, TI.UP_FOR_RETRY, TI.SCHEDULED, next_retry_at=None, updated_at=now):
            states[ti.task_id] = TI.SCHEDULED.value
            changed += 1
    for task_id in cache.order(session, run.dag_version_id):
        pending = by_task.get(task_id)
        if pending is None or states[task_id] != TI.NONE.value:
            continue
        decision = decide(sdag, task_id, states)
        if decision is Decision.WAIT or (decision is Decision.RUN and past.reason(task_id) is not None):
            continue
        new = _DECISION_STATE[decision]
        extra: dict[str, Any] = (
            {} if new is TI.SCHEDULED else {"start_date": now, "end_date": now, "end_reason": "trigger_rule"}
        )
        if set_ti_state(session, pending.id, TI.NONE, new, updated_at=now, **extra):
            states[task_id] = new.value
            changed += 1
    return changed


def examine_runs(session: Session, now: datetime, *, cache: DagCache, run_ids: Iterable[int] | None = None) -> int:
    """Decide the task instances of running runs of unpaused DAGs; return how many changed state.

    ``run_ids`` (None: every running run) limits the pass to those runs. Runs
    with no task instance in ``none`` or ``up_for_retry`` are not loaded.
    """
    runs = queries.runs_to_examine(session, run_ids)
    tis_by_run: dict[int, list[queries.TiDecisionRow]] = {}
    for ti in queries.ti_rows_of_runs(session, [r.id for r in runs]):
        tis_by_run.setdefault(ti.dag_run_id, []).append(ti)
    return sum(examine_run(session, run, tis_by_run.get(run.id, []), now, cache) for run in runs)


class QueueLimits:
    """Free capacity while queueing: executor slots, pools and max_active_tasks per DAG."""

    def __init__(self, session: Session, open_slots: int, parallelism: int) -> None:
        self.pool_free = queries.pool_sizes(session)
        self.dag_active: dict[str, int] = {}
        active = 0
        for dag_id, pool, count, slots in queries.active_ti_usage(session):
            active += int(count)
            self.pool_free[pool] = self.pool_free.get(pool, 0) - int(slots or 0)
            self.dag_active[dag_id] = self.dag_active.get(dag_id, 0) + count
        self.free = max(0, min(open_slots, parallelism - active))
        self.dag_limit: dict[str, int] = {}

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
        return None

    def take(self, ti: queries.ScheduledTi) -> None:
        """Count ``ti`` as queued."""
        self.free -= 1
        self.pool_free[ti.pool] -= ti.pool_slots
        self.dag_active[ti.dag_id] = self.dag_active.get(ti.dag_id, 0) + 1


class Queueing(Protocol):
    """The part of the executor interface queue_ready uses (see ``headrace.executors.base``)."""

    def open_slots(self) -> int: ...
    def queue(self, request: TryRequest) -> None: ...


class Queuer:
    """Moves scheduled task instances to queued and hands them to the executor.

    Holds the set of unknown pools already warned about, so the warning is
    logged once per pool, not once per loop.
    """

    def __init__(self, parallelism: int, *, on_queued: Callable[[TryRequest], None] | None = None) -> None:
        self.parallelism = parallelism
        self.on_queued = on_queued
        """Called with each request the executor accepted (the scheduler emits ``on_try_queued``)."""
        self._warned_pools: set[str] = set()

    def queue_ready(self, db: Database, executor: Queueing, now: datetime) -> int:
        """Queue as many scheduled task instances as the limits allow; return how many were queued."""
        open_slots = executor.open_slots()
        if open_slots <= 0:
            return 0
        requests: list[TryRequest] = []
        with db.session() as session:
            limits = QueueLimits(session, open_slots, self.parallelism)
            if limits.free <= 0:
                return 0
            candidates = queries.scheduled_tis(session, limit=max(limits.free * 4, 64))
            limits.dag_limit = queries.dag_limits(session, (ti.dag_id for ti in candidates))
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
                if set_ti_state(
                    session,
                    ti.id,
                    TI.SCHEDULED,
                    TI.QUEUED,
                    try_number=ti.try_number + 1,
                    queued_at=now,
                    updated_at=now,
                    end_reason=None,
                ):
                    limits.take(ti)
                    requests.append(
                        TryRequest(
                            ti_id=ti.id,
                            dag_id=ti.dag_id,
                            run_id=ti.run_id,
                            task_id=ti.task_id,
                            try_number=ti.try_number + 1,
                            fileloc=ti.fileloc,
                            queue=ti.queue,
                            priority_weight=ti.priority_weight,
                        )
                    )
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
