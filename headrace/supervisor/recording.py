"""Recording a try's outcome: the one write of its end, and keeping it on local disk until the database has it.

:class:`Outcome` and :func:`apply` are used by the supervisor, and by the
scheduler for an outcome a supervisor left on disk (:func:`kept`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headrace.db.assets import EventSource, record_asset_events
from headrace.db.models import RenderedTaskInstanceFields, TaskReschedule, TaskTry, Trigger, UtcDateTime
from headrace.db.transitions import end_try, set_ti_state
from headrace.states import EndReason, TaskInstanceState

log = logging.getLogger(__name__)

TI = TaskInstanceState


# --- a recorded outcome, and keeping it on disk until the database has it -------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A try's outcome as the supervisor records it: the task instance's new state and the try row's values.

    JSON-able (:meth:`to_json` / :meth:`from_json`), so it can wait on local
    disk while the database is unreachable (:func:`keep`).
    """

    ti_id: int
    try_number: int
    try_row_id: int
    state: str
    """The task instance's new state."""
    try_state: str
    """The state written on the ``task_try`` row (differs from ``state`` only for ``externally_set``)."""
    end_date: datetime
    end_reason: str
    next_retry_at: datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    peak_rss_bytes: int | None = None
    """Bytes."""
    cpu_seconds: float | None = None
    error: str | None = None
    processes_left: int | None = None
    """Processes of the try still running after its task process ended (see :mod:`.cgroups`)."""
    processes_killed: int | None = None
    """Of those, how many the supervisor killed."""
    rendered_fields: dict[str, str] | None = None
    """The task's rendered template fields (masked), if its process rendered them: written with the outcome."""
    rendered_map_index: str | None = None
    """The task's rendered ``map_index_template`` (its label), if its process sent one: written with the outcome."""
    reschedule_date: datetime | None = None
    """With state ``up_for_reschedule``: when the sensor's next poke is due (a ``task_reschedule`` row is
    written with the outcome)."""
    poke_start_date: datetime | None = None
    """With state ``up_for_reschedule``: when this poke's try was claimed (the ``task_reschedule`` row's start)."""
    trigger_classpath: str | None = None
    """With state ``deferred``: the trigger's class (a ``trigger`` row is written with the outcome)."""
    trigger_kwargs: str | None = None
    """With state ``deferred``: the trigger's kwargs, JSON text."""
    next_method: str | None = None
    """With state ``deferred``: the method the task resumes in."""
    next_kwargs: str | None = None
    """With state ``deferred``: JSON text of that method's extra keyword arguments (None: none)."""
    trigger_timeout: datetime | None = None
    """With state ``deferred``: when the deferral times out (None: never)."""
    asset_events: list[dict[str, Any]] | None = None
    """The asset events of a successful try (its outlets): written with the success (:mod:`headrace.db.assets`)."""
    asset_source: list[Any] | None = None
    """``[dag_id, task_id, run_id, map_index]`` of the try's task instance: the events' source."""

    def to_json(self) -> str:
        data = asdict(self)
        for key in _DATES:
            data[key] = data[key].isoformat() if data[key] is not None else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) for text that is not an outcome."""
        data = json.loads(text)
        for key in _DATES:
            if data.get(key) is not None:
                data[key] = datetime.fromisoformat(data[key])
        return cls(**data)

    def try_values(self, *, end_reason: str | None = None, error: str | None = None) -> dict[str, Any]:
        """Columns of ``task_try`` for :func:`~headrace.db.transitions.end_try`."""
        return {
            "state": self.try_state,
            "end_date": self.end_date,
            "end_reason": end_reason or self.end_reason,
            "error": error if error is not None else self.error,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "peak_rss_bytes": self.peak_rss_bytes,
            "cpu_seconds": self.cpu_seconds,
            "processes_left": self.processes_left,
            "processes_killed": self.processes_killed,
        }


_DATES = ("end_date", "next_retry_at", "reschedule_date", "poke_start_date", "trigger_timeout")
"""The datetime fields of :class:`Outcome` (ISO 8601 in its JSON)."""


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


def pending_dir(home: Path) -> Path:
    """Where outcomes wait for the database: ``<home>/pending_outcomes``."""
    return home / "pending_outcomes"


def pending_path(home: Path, ti_id: int, try_number: int) -> Path:
    """The file of one try's waiting outcome."""
    return pending_dir(home) / f"{ti_id}-{try_number}.json"


def keep(home: Path, outcome: Outcome) -> Path:
    """Write ``outcome`` to its pending file (atomically: a temporary file renamed); return the path."""
    path = pending_path(home, outcome.ti_id, outcome.try_number)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(outcome.to_json())
    os.replace(tmp, path)
    return path


def kept(home: Path, ti_id: int, try_number: int) -> Outcome | None:
    """The outcome a supervisor left on disk for this try, or None (no file, or not readable as one)."""
    path = pending_path(home, ti_id, try_number)
    try:
        return Outcome.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable pending outcome %s: %s", path, exc)
        return None


def forget(home: Path, ti_id: int, try_number: int) -> None:
    """Remove the try's pending file, once the database has its outcome."""
    try:
        pending_path(home, ti_id, try_number).unlink()
    except FileNotFoundError:
        pass
