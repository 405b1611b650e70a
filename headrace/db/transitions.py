"""The only writer of task instance and DAG run state.

Every change is a compare-and-set: ``UPDATE … SET state = :new WHERE id = :id
AND state = :expected``. When two writers race (two schedulers, a scheduler
and a late supervisor, a zombie check and a supervisor finishing), exactly one
UPDATE matches the row; the other sees ``rowcount == 0`` and gets ``False``.
A change the transition table forbids is a programming error and raises
``InvalidTransition`` before anything is written.

``task_instance.reschedule_date`` (a sensor's next poke) lives only along the
poke's path — ``running → up_for_reschedule → scheduled → queued → running``
(and ``queued → scheduled`` when a queued poke is given back): every other
change clears it (:data:`KEEPS_RESCHEDULE_DATE`), so no writer can leave a
stale one that would make a later try continue an old ``try_number``. A
deferral's ``next_method`` / ``next_kwargs`` live the same way along
``running → deferred → scheduled → queued → running`` (:data:`KEEPS_NEXT_METHOD`),
and ``trigger_id`` / ``trigger_timeout`` only while ``deferred``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Update, and_, bindparam, case, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from headrace.db.models import DagRun, TaskInstance, TaskTry
from headrace.exceptions import InvalidTransition
from headrace.states import DagRunState, TaskInstanceState, can_transition, can_transition_run

_TI = TaskInstanceState
KEEPS_RESCHEDULE_DATE: frozenset[tuple[TaskInstanceState, TaskInstanceState]] = frozenset(
    {
        (_TI.UP_FOR_RESCHEDULE, _TI.SCHEDULED),
        (_TI.SCHEDULED, _TI.QUEUED),
        (_TI.QUEUED, _TI.RUNNING),
        (_TI.QUEUED, _TI.SCHEDULED),
        (_TI.RUNNING, _TI.UP_FOR_RESCHEDULE),
    }
)
"""Transitions that leave ``reschedule_date`` as it is (unless the caller sets it); every other one clears it."""

KEEPS_NEXT_METHOD: frozenset[tuple[TaskInstanceState, TaskInstanceState]] = frozenset(
    {
        (_TI.RUNNING, _TI.DEFERRED),
        (_TI.DEFERRED, _TI.SCHEDULED),
        (_TI.SCHEDULED, _TI.QUEUED),
        (_TI.QUEUED, _TI.RUNNING),
        (_TI.QUEUED, _TI.SCHEDULED),
    }
)
"""Transitions that leave ``next_method`` / ``next_kwargs`` as they are (unless the caller sets them): a
deferral's path ``running → deferred → scheduled → queued → running``; every other one clears them, and
every transition but ``running → deferred`` clears ``trigger_id`` and ``trigger_timeout``."""


def _clear_stale(expected: TaskInstanceState, new: TaskInstanceState, values: dict[str, Any]) -> None:
    """Default the columns that live only along a poke's or a deferral's path to NULL off that path."""
    if (expected, new) not in KEEPS_RESCHEDULE_DATE:
        values.setdefault("reschedule_date", None)
    if (expected, new) not in KEEPS_NEXT_METHOD:
        values.setdefault("next_method", None)
        values.setdefault("next_kwargs", None)
    if new is not _TI.DEFERRED:
        values.setdefault("trigger_id", None)
        values.setdefault("trigger_timeout", None)


_TI_CAS: dict[tuple[bool, tuple[str, ...]], Update] = {}
"""Compare-and-set statements by shape (try guard, columns set), built once per process.

Building an UPDATE and its cache key costs more than running it on SQLite; the
supervisor runs two per try, the scheduler one per task instance it moves.
"""


def _ti_cas_statement(guard_try: bool, columns: tuple[str, ...]) -> Update:
    stmt = _TI_CAS.get((guard_try, columns))
    if stmt is None:
        stmt = update(TaskInstance).where(
            TaskInstance.id == bindparam("cas_id"), TaskInstance.state == bindparam("cas_expected")
        )
        if guard_try:
            stmt = stmt.where(TaskInstance.try_number == bindparam("cas_try_number"))
        stmt = stmt.values(state=bindparam("cas_new"), **{c: bindparam(c) for c in columns})
        stmt = stmt.execution_options(synchronize_session=False)
        _TI_CAS[(guard_try, columns)] = stmt
    return stmt


def set_ti_state(
    session: Session | Connection,
    ti_id: int,
    expected: TaskInstanceState,
    new: TaskInstanceState,
    *,
    expected_try_number: int | None = None,
    **values: Any,
) -> bool:
    """Move task instance ``ti_id`` from ``expected`` to ``new``; return whether this call won.

    ``session`` is an ORM Session or a Core Connection (the supervisor's hot
    path uses a bare connection). ``values`` are further columns of
    ``task_instance`` set in the same UPDATE; a SQL expression such as
    ``TaskInstance.try_number + 1`` is allowed. ``expected_try_number`` adds
    ``AND try_number = :n`` so a supervisor only wins for the try it was
    started for. ``updated_at`` is set to now unless given.

    Raises ``InvalidTransition`` if the transition table forbids ``expected → new``.
    """
    expected = TaskInstanceState(expected)
    new = TaskInstanceState(new)
    if not can_transition(expected, new):
        raise InvalidTransition(expected.value, new.value)
    values.setdefault("updated_at", datetime.now(UTC))
    _clear_stale(expected, new, values)
    params: dict[str, Any] = {"cas_id": ti_id, "cas_expected": expected.value, "cas_new": new.value}
    if expected_try_number is not None:
        params["cas_try_number"] = expected_try_number
    if any(isinstance(v, ClauseElement) for v in values.values()):
        # An expression cannot be a bound parameter: build this one statement afresh.
        stmt = _ti_cas_statement(expected_try_number is not None, ()).values(**values)
    else:
        stmt = _ti_cas_statement(expected_try_number is not None, tuple(sorted(values)))
        params.update(values)
    result = session.execute(stmt, params)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_ti_states_each(
    session: Session | Connection,
    changes: Sequence[tuple[int, int, dict[str, Any]]],
    expected: TaskInstanceState,
    new: TaskInstanceState,
) -> None:
    """Move many task instances ``expected → new``, each with its own values, in one executemany of the same
    compare-and-set as :func:`set_ti_state`: ``changes`` are ``(ti_id, expected_try_number, values)`` with the
    same value columns in each (plain values). Which ones won is not reported (the driver may not tell).

    For the triggerer handing back a batch of fired deferrals. Raises ``InvalidTransition`` if the table
    forbids ``expected → new``, ``ValueError`` if the rows do not set the same columns.
    """
    expected = TaskInstanceState(expected)
    new = TaskInstanceState(new)
    if not can_transition(expected, new):
        raise InvalidTransition(expected.value, new.value)
    if not changes:
        return
    rows = []
    for ti_id, try_number, values in changes:
        values = dict(values)
        values.setdefault("updated_at", datetime.now(UTC))
        _clear_stale(expected, new, values)
        rows.append(
            {
                "cas_id": ti_id,
                "cas_try_number": try_number,
                "cas_expected": expected.value,
                "cas_new": new.value,
                **values,
            }
        )
    columns = tuple(sorted(k for k in rows[0] if not k.startswith("cas_")))
    if any(tuple(sorted(k for k in row if not k.startswith("cas_"))) != columns for row in rows):
        raise ValueError("set_ti_states_each: every change must set the same columns")
    conn = session.connection() if isinstance(session, Session) else session  # Core executemany, not ORM bulk
    conn.execute(_ti_cas_statement(True, columns), rows)


def set_tis_state(
    session: Session | Connection,
    ti_ids: Sequence[int],
    expected: TaskInstanceState,
    new: TaskInstanceState,
    **values: Any,
) -> int:
    """Move the task instances ``ti_ids`` that are in ``expected`` to ``new`` in one compare-and-set UPDATE;
    return how many moved (those not in ``expected`` any more are left as they are).

    For the scheduler deciding a mapped task's many instances at once. ``values`` as :func:`set_ti_state`
    (plain values only). Raises ``InvalidTransition`` if the transition table forbids ``expected → new``.
    """
    expected = TaskInstanceState(expected)
    new = TaskInstanceState(new)
    if not can_transition(expected, new):
        raise InvalidTransition(expected.value, new.value)
    if not ti_ids:
        return 0
    values.setdefault("updated_at", datetime.now(UTC))
    _clear_stale(expected, new, values)
    stmt = (
        update(TaskInstance)
        .where(TaskInstance.id.in_(list(ti_ids)), TaskInstance.state == expected.value)
        .values(state=new.value, **values)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def requeue_ti(session: Session | Connection, ti_id: int, try_number: int) -> bool:
    """Give a queued try that never started back: ``queued → scheduled``, ``try_number - 1``; True if this call did.

    A queued poke of a sensor in reschedule mode (``reschedule_date`` set) continues its try: its
    ``try_number`` was not raised when it was queued, so it is not lowered either; nor is a resumed deferral's
    (``next_method`` set). The one requeue rule (a try stuck in queued, an executor that refused it,
    a queuing commit whose answer was lost). Guarded by ``try_number``, so a
    try a supervisor claimed meanwhile is left alone.
    """
    return set_ti_state(
        session,
        ti_id,
        TaskInstanceState.QUEUED,
        TaskInstanceState.SCHEDULED,
        expected_try_number=try_number,
        try_number=case(
            (and_(TaskInstance.reschedule_date.is_(None), TaskInstance.next_method.is_(None)), try_number - 1),
            else_=try_number,
        ),
        queued_at=None,
        external_executor_id=None,
        queued_by_job_id=None,
    )


_TRY_COLUMNS = (
    "state",
    "end_date",
    "end_reason",
    "error",
    "exit_code",
    "signal",
    "peak_rss_bytes",
    "cpu_seconds",
    "processes_left",
    "processes_killed",
)
_END_TRY: dict[tuple[str, ...], Update] = {}


def end_try(session: Session | Connection, row_id: int, **values: Any) -> bool:
    """Close ``task_try`` row ``row_id`` with ``values``, unless it is closed already; return whether this call did.

    The only writer of a try's outcome: ``UPDATE task_try SET … WHERE id = :id
    AND end_date IS NULL``, so the first writer (the supervisor that recorded
    its outcome, or the zombie check) decides and a later one changes nothing.
    Callers write a try's row only after their compare-and-set of the task
    instance won, or else with end reason ``lost_race``. ``values`` must
    include ``end_date``; allowed keys: ``state``, ``end_date``,
    ``end_reason``, ``error``, ``exit_code``, ``signal``, ``peak_rss_bytes``,
    ``cpu_seconds``, ``processes_left``, ``processes_killed``. Raises ``ValueError`` for any other key.
    """
    unknown = set(values) - set(_TRY_COLUMNS)
    if unknown or "end_date" not in values:
        raise ValueError(f"end_try: end_date is required; unknown columns {sorted(unknown)}")
    columns = tuple(sorted(values))
    stmt = _END_TRY.get(columns)
    if stmt is None:
        stmt = (
            update(TaskTry)
            .where(TaskTry.id == bindparam("try_row_id"), TaskTry.end_date.is_(None))
            .values(**{c: bindparam(c) for c in columns})
            .execution_options(synchronize_session=False)
        )
        _END_TRY[columns] = stmt
    result = session.execute(stmt, {"try_row_id": row_id, **values})
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_run_state(
    session: Session,
    dag_run_pk: int,
    expected: DagRunState,
    new: DagRunState,
    **values: Any,
) -> bool:
    """Move DAG run ``dag_run_pk`` (its ``id`` column) from ``expected`` to ``new``; return whether this call won.

    Raises ``InvalidTransition`` if the transition table forbids ``expected → new``.
    """
    expected = DagRunState(expected)
    new = DagRunState(new)
    if not can_transition_run(expected, new):
        raise InvalidTransition(expected.value, new.value, what="DAG run")
    result = session.execute(
        update(DagRun)
        .where(DagRun.id == dag_run_pk, DagRun.state == expected.value)
        .values(state=new.value, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
