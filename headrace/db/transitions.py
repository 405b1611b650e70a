"""The only writer of task instance and DAG run state.

Every change is a compare-and-set: ``UPDATE … SET state = :new WHERE id = :id
AND state = :expected``. When two writers race (two schedulers, a scheduler
and a late supervisor, a zombie check and a supervisor finishing), exactly one
UPDATE matches the row; the other sees ``rowcount == 0`` and gets ``False``.
A change the transition table forbids is a programming error and raises
``InvalidTransition`` before anything is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from headrace.db.models import DagRun, TaskInstance
from headrace.exceptions import InvalidTransition
from headrace.states import DagRunState, TaskInstanceState, can_transition, can_transition_run


def set_ti_state(
    session: Session,
    ti_id: int,
    expected: TaskInstanceState,
    new: TaskInstanceState,
    *,
    expected_try_number: int | None = None,
    **values: Any,
) -> bool:
    """Move task instance ``ti_id`` from ``expected`` to ``new``; return whether this call won.

    ``values`` are further columns of ``task_instance`` set in the same UPDATE
    (a SQL expression such as ``TaskInstance.try_number + 1`` is allowed).
    ``expected_try_number`` adds ``AND try_number = :n`` so a supervisor only
    wins for the try it was started for. ``updated_at`` is set to now unless given.

    Raises ``InvalidTransition`` if the transition table forbids ``expected → new``.
    """
    expected = TaskInstanceState(expected)
    new = TaskInstanceState(new)
    if not can_transition(expected, new):
        raise InvalidTransition(expected.value, new.value)
    stmt = update(TaskInstance).where(TaskInstance.id == ti_id, TaskInstance.state == expected.value)
    if expected_try_number is not None:
        stmt = stmt.where(TaskInstance.try_number == expected_try_number)
    values.setdefault("updated_at", datetime.now(UTC))
    result = session.execute(
        stmt.values(state=new.value, **values).execution_options(synchronize_session=False)
    )
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
