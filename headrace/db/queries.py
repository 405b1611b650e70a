"""Named queries the scheduler and the DAG processor run against the metadata DB.

Each function takes an open ``Session`` and returns plain rows or ORM objects;
none of them commits. Queries that *claim* rows for a state change (DAGs due a
run, DAG runs to examine, scheduled task instances to queue) lock what they
return with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two schedulers never
work on the same rows at once; SQLite ignores the clause (one scheduler holds
the lease there, and ``BEGIN IMMEDIATE`` serialises writers anyway). Locks are ``FOR NO KEY UPDATE``
(``key_share``): they keep other schedulers off a row but let rows referencing it be inserted meanwhile (a
supervisor's XCom, a mapped task's new instances). The state
changes themselves still go through :mod:`headrace.db.transitions`
(compare-and-set), so a lost race is harmless either way.

Datetimes are timezone-aware UTC, as everywhere in ``headrace.db``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ScalarSelect, and_, bindparam, exists, func, select, true
from sqlalchemy.orm import Session, aliased

from headrace.db.models import DagModel, DagRun, DagVersion, DagWarning, Pool, TaskInstance, TaskTry
from headrace.states import TI_ACTIVE, DagRunState, TaskInstanceState

_ACTIVE = [s.value for s in TI_ACTIVE]
_RUN_ACTIVE = [DagRunState.QUEUED.value, DagRunState.RUNNING.value]
_UNDECIDED = [
    TaskInstanceState.NONE.value,
    TaskInstanceState.UP_FOR_RETRY.value,
    TaskInstanceState.UP_FOR_RESCHEDULE.value,
]
_UNFINISHED = [s.value for s in TaskInstanceState if not s.is_finished]

# Hot paths read plain Core rows from the tables (no ORM objects, no identity map).
_dag, _run, _ti = DagModel.__table__, DagRun.__table__, TaskInstance.__table__


# --- DAGs ----------------------------------------------------------------------


def dags_due(session: Session, now: datetime, *, limit: int = 100) -> Sequence[DagModel]:
    """Active, unpaused DAGs whose ``next_run_after <= now``, earliest first; locked (PG)."""
    stmt = (
        select(DagModel)
        .where(DagModel.is_active.is_(True), DagModel.is_paused.is_(False), DagModel.next_run_after <= now)
        .order_by(DagModel.next_run_after)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    )
    return session.scalars(stmt).all()


def current_version(session: Session, dag: DagModel) -> DagVersion | None:
    """The ``dag_version`` row matching ``dag.version_hash`` (None if it is missing)."""
    return session.scalars(
        select(DagVersion).where(DagVersion.dag_id == dag.dag_id, DagVersion.version_hash == dag.version_hash)
    ).first()


def paused_or_inactive_dag_ids(session: Session) -> set[str]:
    """Ids of DAGs whose runs must not progress (paused, or gone from their file)."""
    rows = session.scalars(
        select(DagModel.dag_id).where((DagModel.is_paused.is_(True)) | (DagModel.is_active.is_(False)))
    )
    return set(rows)


def dag_warnings(session: Session, dag_ids: Iterable[str] | None = None) -> dict[str, list[DagWarning]]:
    """``{dag_id: [DagWarning, ...]}`` of active DAGs (or of ``dag_ids``), each list in parse order.

    DAGs without warnings are absent. A warning names an argument the DAG's
    author wrote that headrace ignores (``warning_type`` ``unsupported_argument``
    or ``unused_default_arg``; ``message`` is one line, for the UI and ``dags
    list``). The rows are replaced each time the DAG's file is parsed.
    """
    stmt = (
        select(DagWarning)
        .join(DagModel, DagModel.dag_id == DagWarning.dag_id)
        .where(DagModel.is_active.is_(True))
        .order_by(DagWarning.dag_id, DagWarning.id)
    )
    if dag_ids is not None:
        stmt = stmt.where(DagWarning.dag_id.in_(list(dag_ids)))
    found: dict[str, list[DagWarning]] = {}
    for row in session.scalars(stmt):
        found.setdefault(row.dag_id, []).append(row)
    return found


# --- DAG runs ------------------------------------------------------------------


def active_run_counts(
    session: Session,
    dag_ids: Iterable[str] | None = None,
    *,
    states: Sequence[DagRunState] = (DagRunState.QUEUED, DagRunState.RUNNING),
) -> dict[str, int]:
    """``{dag_id: number of runs in one of states}`` (DAGs with none are absent)."""
    stmt = (
        select(DagRun.dag_id, func.count()).where(DagRun.state.in_([s.value for s in states])).group_by(DagRun.dag_id)
    )
    if dag_ids is not None:
        stmt = stmt.where(DagRun.dag_id.in_(list(dag_ids)))
    return {dag_id: int(n) for dag_id, n in session.execute(stmt)}


def last_scheduled_run(session: Session, dag_id: str) -> DagRun | None:
    """The scheduled run of ``dag_id`` with the latest logical date, or None."""
    return session.scalars(
        select(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.run_type == "scheduled")
        .order_by(DagRun.logical_date.desc())
        .limit(1)
    ).first()


def run_exists(
    session: Session, dag_id: str, *, run_id: str | None = None, logical_date: datetime | None = None
) -> bool:
    """Whether ``dag_id`` has a run with this ``run_id`` (or, if given, this logical date)."""
    conditions = [DagRun.dag_id == dag_id]
    if run_id is not None:
        conditions.append(DagRun.run_id == run_id)
    if logical_date is not None:
        conditions.append(DagRun.logical_date == logical_date)
    return session.scalar(select(func.count()).select_from(DagRun).where(*conditions)) != 0


class QueuedRun(NamedTuple):
    """A queued run, as :func:`queued_runs` gives it."""

    id: int
    dag_id: str


class RunToExamine(NamedTuple):
    """A running run with a task instance still to decide (:func:`runs_to_examine`)."""

    id: int
    dag_version_id: int
    """Set on every run the scheduler created or a trigger made (the column allows NULL for old rows)."""
    run_id: str = ""


class FinishableRun(NamedTuple):
    """A running run whose task instances have all finished (:func:`finishable_runs`)."""

    id: int
    run_id: str
    dag_id: str
    dag_version_id: int


class TiDecisionRow(NamedTuple):
    """What deciding a task instance needs (:func:`ti_rows_of_runs`)."""

    id: int
    dag_run_id: int
    task_id: str
    state: str
    next_retry_at: datetime | None
    map_index: int = -1
    reschedule_date: datetime | None = None
    """When an ``up_for_reschedule`` sensor's next poke is due."""


class TiRow(NamedTuple):
    """A task instance's state and try (:func:`ti_rows`)."""

    id: int
    dag_run_id: int
    state: str
    try_number: int
    task_id: str


class ScheduledTi(NamedTuple):
    """A scheduled task instance ready to queue, with its DAG's file (:func:`scheduled_tis`)."""

    id: int
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    fileloc: str
    map_index: int
    dag_run_id: int
    dag_version_id: int | None
    reschedule_date: datetime | None
    """Set for a sensor's next poke in reschedule mode: it continues the current ``try_number``."""
    next_method: str | None
    """Set for a deferred task resuming: it continues the current ``try_number``."""
    max_active_tasks: int
    """Its DAG's ``max_active_tasks``, read with it."""


class TiUsage(NamedTuple):
    """Queued or running task instances of one DAG in one pool (:func:`active_ti_usage`)."""

    dag_id: str
    pool: str
    tis: int
    pool_slots: int | None


def queued_runs(session: Session, *, limit: int = 500, only_run: int | None = None) -> list[QueuedRun]:
    """Queued runs ``(id, dag_id)`` of unpaused, active DAGs, oldest logical date first; locked (PG).

    ``only_run`` (a ``dag_run.id``) narrows to that run (``dags test``)."""
    stmt = (
        select(_run.c.id, _run.c.dag_id)
        .join(_dag, _dag.c.dag_id == _run.c.dag_id)
        .where(_run.c.state == DagRunState.QUEUED.value, _dag.c.is_paused.is_(False), _dag.c.is_active.is_(True))
        .order_by(_run.c.logical_date, _run.c.queued_at, _run.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=_run, key_share=True)
    )
    if only_run is not None:
        stmt = stmt.where(_run.c.id == only_run)
    return [QueuedRun._make(r) for r in session.connection().execute(stmt)]


_RUNS_TO_EXAMINE = (
    select(_run.c.id, _run.c.dag_version_id, _run.c.run_id)
    .join(_dag, _dag.c.dag_id == _run.c.dag_id)
    .where(
        _run.c.state == DagRunState.RUNNING.value,
        _dag.c.is_paused.is_(False),
        _dag.c.is_active.is_(True),
        exists().where(_ti.c.dag_run_id == _run.c.id, _ti.c.state.in_(_UNDECIDED)),
    )
    .order_by(_run.c.logical_date, _run.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=_run, key_share=True)
)
_SOME_RUNS_TO_EXAMINE = _RUNS_TO_EXAMINE.where(_run.c.id.in_(bindparam("ids", expanding=True)))


def runs_to_examine(session: Session, run_ids: Iterable[int] | None = None, *, limit: int = 200) -> list[RunToExamine]:
    """Running runs ``(id, dag_version_id, run_id)`` of unpaused, active DAGs with a task instance still to decide.

    Only runs with a task instance in state ``none``, ``up_for_retry`` or ``up_for_reschedule`` (the
    only ones a decision can change); ``run_ids`` narrows to those runs.
    Oldest logical date first; locked (PG).
    """
    if run_ids is None:
        rows = session.connection().execute(_RUNS_TO_EXAMINE, {"limit": limit})
    else:
        rows = session.connection().execute(_SOME_RUNS_TO_EXAMINE, {"limit": limit, "ids": list(run_ids)})
    return [RunToExamine._make(r) for r in rows]


_FINISHABLE_RUNS = (
    select(_run.c.id, _run.c.run_id, _run.c.dag_id, _run.c.dag_version_id)
    .where(
        _run.c.state == DagRunState.RUNNING.value,
        ~exists().where(_ti.c.dag_run_id == _run.c.id, _ti.c.state.in_(_UNFINISHED)),
    )
    .order_by(_run.c.logical_date, _run.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=_run, key_share=True)
)


def finishable_runs(session: Session, *, limit: int = 500, only_run: int | None = None) -> list[FinishableRun]:
    """Running runs ``(id, run_id, dag_id, dag_version_id)`` (paused or not) whose task instances have all finished.

    Oldest first; locked (PG). ``only_run`` (a ``dag_run.id``) narrows to that run (``dags test``).
    """
    stmt = _FINISHABLE_RUNS if only_run is None else _FINISHABLE_RUNS.where(_run.c.id == only_run)
    return [FinishableRun._make(r) for r in session.connection().execute(stmt, {"limit": limit})]


def runs_needing_callbacks(session: Session, *, limit: int = 50, only_run: int | None = None) -> Sequence[DagRun]:
    """Finished runs whose DAG-level callback has not been handled yet (``only_run``: of that ``dag_run.id``);
    locked (PG)."""
    stmt = (
        select(DagRun)
        .where(
            DagRun.state.in_([DagRunState.SUCCESS.value, DagRunState.FAILED.value]), DagRun.callbacks_done.is_(False)
        )
        .order_by(DagRun.end_date, DagRun.id)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    )
    if only_run is not None:
        stmt = stmt.where(DagRun.id == only_run)
    return session.scalars(stmt).all()


_EARLIEST_NEXT_RUN_AFTER = select(func.min(_dag.c.next_run_after)).where(
    _dag.c.is_active.is_(True), _dag.c.is_paused.is_(False)
)


def earliest_next_run_after(session: Session) -> datetime | None:
    """The soonest ``next_run_after`` over active, unpaused DAGs (None if no DAG is scheduled)."""
    when: datetime | None = session.connection().scalar(_EARLIEST_NEXT_RUN_AFTER)
    return when


# --- task instances ------------------------------------------------------------


def ti_rows_of_runs(session: Session, dag_run_ids: Sequence[int]) -> list[TiDecisionRow]:
    """``(id, dag_run_id, task_id, state, next_retry_at, map_index, reschedule_date)`` of every task instance of
    the given runs."""
    if not dag_run_ids:
        return []
    return [
        TiDecisionRow._make(r)
        for r in session.connection().execute(
            select(
                _ti.c.id,
                _ti.c.dag_run_id,
                _ti.c.task_id,
                _ti.c.state,
                _ti.c.next_retry_at,
                _ti.c.map_index,
                _ti.c.reschedule_date,
            ).where(_ti.c.dag_run_id.in_(list(dag_run_ids)))
        )
    ]


_TI_ROWS_OF_TASKS = select(
    _ti.c.id,
    _ti.c.dag_run_id,
    _ti.c.task_id,
    _ti.c.state,
    _ti.c.next_retry_at,
    _ti.c.map_index,
    _ti.c.reschedule_date,
).where(_ti.c.dag_run_id == bindparam("run"), _ti.c.task_id.in_(bindparam("tasks", expanding=True)))
_TASKS_PER_QUERY = 900
"""Task ids per ``IN`` list (SQLite builds before 3.32 allow 999 bound parameters)."""


def ti_rows_of_run_tasks(session: Session, dag_run_id: int, task_ids: Iterable[str]) -> list[TiDecisionRow]:
    """:func:`ti_rows_of_runs`' rows of one run's instances of ``task_ids`` only (every map index of each); by the
    ``(dag_run_id, task_id, map_index)`` unique index, so the cost follows the tasks asked for, not the run."""
    wanted = sorted(set(task_ids))
    rows: list[TiDecisionRow] = []
    conn = session.connection()
    for start in range(0, len(wanted), _TASKS_PER_QUERY):
        chunk = wanted[start : start + _TASKS_PER_QUERY]
        rows.extend(
            TiDecisionRow._make(r) for r in conn.execute(_TI_ROWS_OF_TASKS, {"run": dag_run_id, "tasks": chunk})
        )
    return rows


def ti_states_of_run(session: Session, dag_run_id: int) -> dict[str, list[str]]:
    """``{task_id: [state of each of its task instances]}`` of one run (one for an unmapped task, one per map
    index for a mapped one, by map index)."""
    rows = session.connection().execute(
        select(_ti.c.task_id, _ti.c.state).where(_ti.c.dag_run_id == dag_run_id).order_by(_ti.c.map_index)
    )
    found: dict[str, list[str]] = {}
    for task_id, state in rows:
        found.setdefault(task_id, []).append(state)
    return found


_TI_ROWS = select(_ti.c.id, _ti.c.dag_run_id, _ti.c.state, _ti.c.try_number, _ti.c.task_id).where(
    _ti.c.id.in_(bindparam("ids", expanding=True))
)


def ti_rows(session: Session, ti_ids: Sequence[int]) -> list[TiRow]:
    """``(id, dag_run_id, state, try_number, task_id)`` of the given task instances."""
    if not ti_ids:
        return []
    return [TiRow._make(r) for r in session.connection().execute(_TI_ROWS, {"ids": list(ti_ids)})]


_RUN_AND_DAG_FIELDS = {
    "fileloc": _dag.c.fileloc,
    "dag_version_id": _run.c.dag_version_id,
    "max_active_tasks": _dag.c.max_active_tasks,
}
"""The fields of :class:`ScheduledTi` that come from its run and its DAG; the others are ``task_instance``'s."""

_SCHEDULED_TIS = (
    select(*(_RUN_AND_DAG_FIELDS[f] if f in _RUN_AND_DAG_FIELDS else _ti.c[f] for f in ScheduledTi._fields))
    .join(_run, _run.c.id == _ti.c.dag_run_id)
    .join(_dag, _dag.c.dag_id == _run.c.dag_id)
    .where(
        _ti.c.state == TaskInstanceState.SCHEDULED.value,
        _run.c.state == DagRunState.RUNNING.value,
        _dag.c.is_paused.is_(False),
    )
    .order_by(_ti.c.priority_weight.desc(), _run.c.logical_date, _ti.c.map_index, _ti.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=_ti, key_share=True)
)


def _first_scheduled_per_run() -> Any:
    """``(id, logical_date, fileloc, dag_version_id, max_active_tasks)`` of the first ``candidates`` scheduled task instances of
    running runs of unpaused DAGs, in queueing order, read from the first ``candidates`` of each run: per run, a
    walk of ``ix_ti_run_state_order`` that stops after ``candidates`` (a LATERAL subquery, PostgreSQL). The
    LATERAL fixes the plan (runs first, then each run's index walk), whatever the planner's statistics say.
    """
    first = aliased(_ti)
    per_run = (
        select(first.c.id, first.c.priority_weight, first.c.map_index)
        .where(first.c.dag_run_id == _run.c.id, first.c.state == TaskInstanceState.SCHEDULED.value)
        .order_by(first.c.priority_weight.desc(), first.c.map_index, first.c.id)
        .limit(bindparam("candidates"))
        .lateral("first_scheduled")
    )
    return (
        select(per_run.c.id, _run.c.logical_date, _dag.c.fileloc, _run.c.dag_version_id, _dag.c.max_active_tasks)
        .select_from(_run)
        .join(_dag, _dag.c.dag_id == _run.c.dag_id)
        .join(per_run, true())
        .where(_run.c.state == DagRunState.RUNNING.value, _dag.c.is_paused.is_(False))
        .order_by(per_run.c.priority_weight.desc(), _run.c.logical_date, per_run.c.map_index, per_run.c.id)
        .limit(bindparam("candidates"))
    )


_FIRST_SCHEDULED_PER_RUN = _first_scheduled_per_run()

_LOCK_TIS = (
    select(*(_ti.c[field] for field in ScheduledTi._fields if field not in _RUN_AND_DAG_FIELDS), _ti.c.state)
    .where(_ti.c.id.in_(bindparam("ids", expanding=True)))
    .with_for_update(skip_locked=True, key_share=True)
)
"""The candidates by primary key alone (no other condition the planner could prefer a worse index for), locked;
rows another transaction holds are passed over."""

LOCK_MARGIN = 2
"""On PostgreSQL, :func:`scheduled_tis` reads ``limit`` × this many candidates, so that ``limit`` remain when
some are locked by another transaction."""


def _scheduled_tis_by_run(session: Session, limit: int, only_run: int | None) -> list[ScheduledTi]:
    """:func:`scheduled_tis` on PostgreSQL, in two statements: the candidates (``_FIRST_SCHEDULED_PER_RUN``), then
    those rows locked by primary key and still scheduled, in queueing order."""
    conn = session.connection()
    stmt = _FIRST_SCHEDULED_PER_RUN if only_run is None else _FIRST_SCHEDULED_PER_RUN.where(_run.c.id == only_run)
    candidates = {row.id: row for row in conn.execute(stmt, {"candidates": limit * LOCK_MARGIN})}
    if not candidates:
        return []
    rows = conn.execute(_LOCK_TIS, {"ids": list(candidates)})
    locked = [r for r in rows if r.state == TaskInstanceState.SCHEDULED.value]
    locked.sort(key=lambda r: (-r.priority_weight, candidates[r.id].logical_date, r.map_index, r.id))
    return [
        ScheduledTi(
            **{
                field: getattr(candidates[r.id] if field in _RUN_AND_DAG_FIELDS else r, field)
                for field in ScheduledTi._fields
            }
        )
        for r in locked[:limit]
    ]


def scheduled_tis(session: Session, *, limit: int, only_run: int | None = None) -> list[ScheduledTi]:
    """The first ``limit`` scheduled TIs of running runs of unpaused DAGs with their DAG's fileloc; locked
    (PostgreSQL: ``FOR NO KEY UPDATE SKIP LOCKED``, so that rows another transaction holds are passed over).

    Order: ``priority_weight`` descending, then the run's logical date, then map index, then id
    (Airflow's order). Rows: ``(id, dag_id, run_id, task_id, try_number, pool,
    pool_slots, queue, priority_weight, fileloc, map_index, dag_run_id, dag_version_id, reschedule_date,
    next_method, max_active_tasks)``.
    ``only_run`` (a ``dag_run.id``) narrows to that run's task instances (``dags test``).

    On PostgreSQL the global first ``limit`` are found among the first ``limit`` × ``LOCK_MARGIN`` of each
    running run (within a run the order is the global one, the run's logical date being one), so the cost
    grows with the number of running runs times ``limit``, not with the number of scheduled task instances: a
    mapped task of 10,000 indices costs ~1 ms instead of 30 ms. SQLite, which has no LATERAL, reads and sorts
    them all.
    """
    if session.get_bind().dialect.name == "postgresql":
        return _scheduled_tis_by_run(session, limit, only_run)
    stmt = _SCHEDULED_TIS if only_run is None else _SCHEDULED_TIS.where(_ti.c.dag_run_id == only_run)
    return [ScheduledTi._make(r) for r in session.connection().execute(stmt, {"limit": limit})]


_ACTIVE_TI_USAGE = (
    select(_ti.c.dag_id, _ti.c.pool, func.count(), func.sum(_ti.c.pool_slots))
    .where(_ti.c.state.in_(_ACTIVE))
    .group_by(_ti.c.dag_id, _ti.c.pool)
)
_POOL_SIZES = select(Pool.__table__.c.name, Pool.__table__.c.slots)


def active_ti_usage(session: Session) -> list[TiUsage]:
    """``(dag_id, pool, count, pool_slots)`` of queued or running task instances, per DAG and pool.

    Gives parallelism, ``max_active_tasks`` and pool usage in one query.
    """
    return [TiUsage._make(r) for r in session.connection().execute(_ACTIVE_TI_USAGE)]


def active_tis_of_tasks(
    session: Session, dag_ids: Iterable[str], task_ids: Iterable[str]
) -> list[tuple[str, str, int, int]]:
    """``(dag_id, task_id, dag_run_id, count)`` of queued or running task instances of the given tasks (for
    ``max_active_tis_per_dag`` / ``max_active_tis_per_dagrun``). Pairs outside ``dag_ids`` × ``task_ids`` may
    be returned too; callers look up the pairs they need."""
    dags, tasks = sorted(set(dag_ids)), sorted(set(task_ids))
    if not dags or not tasks:
        return []
    stmt = (
        select(_ti.c.dag_id, _ti.c.task_id, _ti.c.dag_run_id, func.count())
        .where(_ti.c.state.in_(_ACTIVE), _ti.c.dag_id.in_(dags), _ti.c.task_id.in_(tasks))
        .group_by(_ti.c.dag_id, _ti.c.task_id, _ti.c.dag_run_id)
    )
    return [(d, t, int(r), int(n)) for d, t, r, n in session.connection().execute(stmt)]


def pool_sizes(session: Session) -> dict[str, int]:
    """``{pool name: slots}``."""
    return {name: int(slots) for name, slots in session.connection().execute(_POOL_SIZES)}


_EARLIEST_RETRY_AT = select(
    select(func.min(_ti.c.next_retry_at)).where(_ti.c.state == TaskInstanceState.UP_FOR_RETRY.value).scalar_subquery(),
    select(func.min(_ti.c.reschedule_date))
    .where(_ti.c.state == TaskInstanceState.UP_FOR_RESCHEDULE.value)
    .scalar_subquery(),
)


def earliest_retry_at(session: Session) -> datetime | None:
    """The soonest time a waiting task instance becomes due: ``next_retry_at`` of one up for retry, or
    ``reschedule_date`` of a sensor up for reschedule (None if there is none). One query, two index reads of
    ``state``: the scheduler wakes at that time without looking at the waiting task instances in between."""
    retry, poke = session.connection().execute(_EARLIEST_RETRY_AT).one()
    dues = [d for d in (retry, poke) if d is not None]
    return min(dues) if dues else None


def tis_with_latest_try(
    session: Session, state: TaskInstanceState, *, queued_before: datetime | None = None
) -> Sequence[tuple[TaskInstance, TaskTry | None]]:
    """Task instances in ``state`` with the ``task_try`` row of their current try (None if none yet).

    ``queued_before`` keeps only those with ``queued_at`` earlier than it.
    """
    stmt = (
        select(TaskInstance, TaskTry)
        .outerjoin(
            TaskTry,
            and_(TaskTry.task_instance_id == TaskInstance.id, TaskTry.try_number == TaskInstance.try_number),
        )
        .where(TaskInstance.state == state.value)
        .order_by(TaskInstance.id)
    )
    if queued_before is not None:
        stmt = stmt.where(TaskInstance.queued_at < queued_before)
    return [(ti, tt) for ti, tt in session.execute(stmt)]


def try_row(session: Session, ti_id: int, try_number: int) -> TaskTry | None:
    """The ``task_try`` row of one try, or None."""
    return session.scalars(
        select(TaskTry).where(TaskTry.task_instance_id == ti_id, TaskTry.try_number == try_number)
    ).first()


__all__ = [
    "active_run_counts",
    "active_ti_usage",
    "active_tis_of_tasks",
    "current_version",
    "dag_warnings",
    "dags_due",
    "earliest_next_run_after",
    "earliest_retry_at",
    "finishable_runs",
    "last_scheduled_run",
    "paused_or_inactive_dag_ids",
    "pool_sizes",
    "queued_runs",
    "run_exists",
    "runs_needing_callbacks",
    "runs_to_examine",
    "scheduled_tis",
    "ti_rows",
    "ti_rows_of_runs",
    "ti_states_of_run",
    "tis_with_latest_try",
    "try_row",
]


# --- previous runs -------------------------------------------------------------------


def previous_success_id(run: type[DagRun] | Any = DagRun) -> ScalarSelect[int]:
    """A scalar subquery, correlated on ``run`` (``DagRun`` or an alias of it): the id of the latest run of
    the same DAG in state ``success`` whose logical date is before ``run``'s — Airflow's "previous successful
    DAG run", whose dates are the context's ``prev_*_success``. NULL if there is none (or ``run`` has no
    logical date)."""
    earlier = aliased(DagRun, name="earlier_run")
    return (
        select(earlier.id)
        .where(
            earlier.dag_id == run.dag_id,
            earlier.state == DagRunState.SUCCESS.value,
            earlier.logical_date < run.logical_date,
        )
        .order_by(earlier.logical_date.desc())
        .limit(1)
        .correlate(run)
        .scalar_subquery()
    )


def previous_success_run(session: Session, dag_id: str, logical_date: datetime | None) -> DagRun | None:
    """The DAG's latest successful run with a logical date before ``logical_date`` (see
    :func:`previous_success_id`); None if there is none or ``logical_date`` is None."""
    if logical_date is None:
        return None
    return session.scalars(
        select(DagRun)
        .where(
            DagRun.dag_id == dag_id,
            DagRun.state == DagRunState.SUCCESS.value,
            DagRun.logical_date < logical_date,
        )
        .order_by(DagRun.logical_date.desc())
        .limit(1)
    ).first()
