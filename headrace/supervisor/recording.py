"""Recording a try's outcome: the one write of its end (the SQL side of :class:`~.store.TryStore.record`).

:func:`apply` is used by the supervisor's SQL store, and by the scheduler for
an outcome a supervisor left on disk (:func:`~.pending.kept`, re-exported here
with :class:`~.pending.Outcome`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headrace.db.assets import EventSource, record_asset_events
from headrace.db.models import RenderedTaskInstanceFields, TaskReschedule, TaskTry, Trigger, UtcDateTime
from headrace.db.transitions import end_try, set_ti_state
from headrace.states import EndReason, TaskInstanceState
from headrace.supervisor.pending import Outcome, forget, keep, kept, pending_dir, pending_path

__all__ = ["Outcome", "apply", "forget", "keep", "kept", "pending_dir", "pending_path", "record_rendered_fields"]

log = logging.getLogger(__name__)

TI = TaskInstanceState


def apply(conn: Connection | Session, outcome: Outcome) -> bool:
    """Write ``outcome`` in the caller's transaction; return whether its task instance took it.

    First the task instance's compare-and-set ``running → state`` for exactly
    this try; if it won, the try row gets the outcome. If it lost (a zombie
    check or a user moved the task instance on), the try row, if still open,
    records the late outcome with end reason ``lost_race``. A won success records its asset events in the
    same transaction (so they exist exactly when the success does) — except for
    ``externally_set``, which is itself that story. If the transaction is run
    again after a COMMIT whose answer was lost, the compare-and-set loses but
    the try row already holds this very ``end_date``: that counts as won.
    A sensor's unmet poke (``up_for_reschedule``) that won adds its ``task_reschedule`` row; a deferral
    (``deferred``) adds its ``trigger`` row, which the task instance points at (``trigger_id``) — the row
    is removed again if the task instance did not take the outcome.
    """
    deferral: dict[str, Any] = {}
    if outcome.state == TI.DEFERRED.value and outcome.trigger_classpath is not None:
        inserted: CursorResult[Any] = conn.execute(  # type: ignore[assignment]
            _INSERT_TRIGGER,
            {"classpath": outcome.trigger_classpath, "kwargs": outcome.trigger_kwargs or "{}", "at": outcome.end_date},
        )
        key = inserted.inserted_primary_key
        assert key is not None
        trigger_id = key[0]
        deferral = {
            "trigger_id": trigger_id,
            "trigger_timeout": outcome.trigger_timeout,
            "next_method": outcome.next_method,
            "next_kwargs": outcome.next_kwargs,
        }
    won = set_ti_state(
        conn,
        outcome.ti_id,
        TI.RUNNING,
        TI(outcome.state),
        expected_try_number=outcome.try_number,
        end_date=outcome.end_date,
        end_reason=outcome.end_reason,
        next_retry_at=outcome.next_retry_at,
        reschedule_date=outcome.reschedule_date,
        updated_at=outcome.end_date,
        **({"rendered_map_index": outcome.rendered_map_index} if outcome.rendered_map_index is not None else {}),
        **deferral,
    )
    if deferral and not won:  # nobody waits on it
        conn.execute(delete(Trigger).where(Trigger.id == deferral["trigger_id"]))
    if won and outcome.reschedule_date is not None:
        conn.execute(
            _INSERT_RESCHEDULE,
            {
                "try_row_id": outcome.try_row_id,
                "start_date": outcome.poke_start_date or outcome.end_date,
                "end_date": outcome.end_date,
                "reschedule_date": outcome.reschedule_date,
            },
        )
    if won or outcome.end_reason == EndReason.EXTERNALLY_SET.value:
        end_try(conn, outcome.try_row_id, **outcome.try_values())
        if outcome.rendered_fields is not None:
            record_rendered_fields(conn, outcome.ti_id, outcome.try_number, outcome.rendered_fields, outcome.end_date)
        if won and outcome.asset_events and outcome.state == TI.SUCCESS.value and outcome.asset_source:
            record_asset_events(
                conn, outcome.asset_events, source=EventSource(*outcome.asset_source), at=outcome.end_date
            )
        return won
    if end_try(
        conn,
        outcome.try_row_id,
        **outcome.try_values(
            end_reason=EndReason.LOST_RACE.value,
            error=f"outcome {outcome.try_state} ({outcome.end_reason}) came after the task instance had been "
            f"moved on by another writer" + (f"; {outcome.error}" if outcome.error else ""),
        ),
    ):
        return False
    return bool(
        conn.execute(
            _SAME_END, {"row_id": outcome.try_row_id, "end_date": outcome.end_date, "end_reason": outcome.end_reason}
        ).first()
    )


_INSERT_RESCHEDULE = insert(TaskReschedule).from_select(
    [
        "task_instance_id",
        "dag_id",
        "run_id",
        "task_id",
        "map_index",
        "try_number",
        "start_date",
        "end_date",
        "reschedule_date",
    ],
    select(
        TaskTry.task_instance_id,
        TaskTry.dag_id,
        TaskTry.run_id,
        TaskTry.task_id,
        TaskTry.map_index,
        TaskTry.try_number,
        bindparam("start_date", type_=UtcDateTime),
        bindparam("end_date", type_=UtcDateTime),
        bindparam("reschedule_date", type_=UtcDateTime),
    ).where(TaskTry.id == bindparam("try_row_id")),
)
"""One poke's ``task_reschedule`` row, its task instance's names copied from the try's row (no extra read)."""

_INSERT_TRIGGER = insert(Trigger).values(
    classpath=bindparam("classpath"), kwargs=bindparam("kwargs"), created_date=bindparam("at", type_=UtcDateTime)
)
"""A deferral's ``trigger`` row (no triggerer yet: one claims it)."""

_SAME_END = select(TaskTry.id).where(
    TaskTry.id == bindparam("row_id"),
    TaskTry.end_date == bindparam("end_date"),
    TaskTry.end_reason == bindparam("end_reason"),
)


_UPDATE_RENDERED = (
    update(RenderedTaskInstanceFields)
    .where(RenderedTaskInstanceFields.task_instance_id == bindparam("ti_id"))
    .values(try_number=bindparam("try_number"), rendered_fields=bindparam("fields"), updated_at=bindparam("at"))
)
_INSERT_RENDERED = insert(RenderedTaskInstanceFields).values(
    task_instance_id=bindparam("ti_id"),
    try_number=bindparam("try_number"),
    rendered_fields=bindparam("fields"),
    updated_at=bindparam("at"),
)


def _upsert_rendered(dialect: Any) -> Any:
    statement = dialect.insert(RenderedTaskInstanceFields).values(
        task_instance_id=bindparam("ti_id"),
        try_number=bindparam("try_number"),
        rendered_fields=bindparam("fields"),
        updated_at=bindparam("at"),
    )
    return statement.on_conflict_do_update(
        index_elements=[RenderedTaskInstanceFields.task_instance_id],
        set_={
            "try_number": statement.excluded.try_number,
            "rendered_fields": statement.excluded.rendered_fields,
            "updated_at": statement.excluded.updated_at,
        },
    )


_UPSERT_RENDERED = {"sqlite": _upsert_rendered(sqlite), "postgresql": _upsert_rendered(postgresql)}
"""One statement (``INSERT … ON CONFLICT DO UPDATE``) where the database has it: the try path's usual case
is a first try, for which an ``UPDATE`` would find no row."""


def record_rendered_fields(
    conn: Connection | Session, ti_id: int, try_number: int, fields: dict[str, str], at: datetime
) -> None:
    """Replace task instance ``ti_id``'s rendered template fields (Airflow's ``rendered_task_instance_fields``).

    One row per task instance, the latest try's; written in the caller's transaction (the outcome's), so
    recording them costs the try path no transaction of its own.
    """
    values = {"ti_id": ti_id, "try_number": try_number, "fields": fields, "at": at}
    dialect = conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect
    upsert = _UPSERT_RENDERED.get(dialect.name)
    if upsert is not None:
        conn.execute(upsert, values)
    elif conn.execute(_UPDATE_RENDERED, values).rowcount == 0:  # type: ignore[attr-defined]
        conn.execute(_INSERT_RENDERED, values)
