"""The database side of deferral: triggerer jobs, claiming triggers, delivering their events exactly once.

Used by the triggerer (:mod:`headrace.triggerer`) and by the scheduler (deferral timeouts). Every change of a
task instance's state goes through :func:`~headrace.db.transitions.set_ti_state` (compare-and-set).

Ownership: a ``trigger`` row is run by the triggerer named in ``triggerer_id``. A triggerer claims rows
with no owner, or whose owner's heartbeat is older than ``dead_after`` seconds (or that ended), with one
compare-and-set ``UPDATE … WHERE id IN (…) AND (triggerer_id IS NULL OR triggerer_id = <the dead one>)``,
up to its free capacity. Delivering an event is one transaction: ``DELETE`` the trigger row *where this
triggerer owns it* (a triggerer that lost it deletes nothing and stops there), then the task instance's
``deferred → scheduled`` for the try that deferred. So an event is delivered once, by the owner, and a
second triggerer that took the trigger over can only deliver it if the first one did not.

A task that starts in the triggerer (``start_from_trigger``) is deferred by the scheduler itself
(:func:`start_in_triggerer`): ``scheduled → deferred`` with ``try_number + 1``, its trigger row and its try's
row (no host, no process) in one transaction.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from headrace.db.models import TaskInstance, TaskMap, TaskTry, Trigger, TriggererJob, XCom
from headrace.db.transitions import set_ti_state, set_ti_states_each
from headrace.db.wakeup import notify_scheduler
from headrace.states import EndReason
from headrace.states import TaskInstanceState as TI

TRIGGER_FAIL_REPR = "__fail__"
"""``next_method`` of a task instance whose trigger failed or timed out (Airflow's marker)."""
TRIGGER_TIMEOUT = "Trigger timeout"
"""``next_kwargs["error"]`` of a deferral that timed out (Airflow's wording)."""
TRIGGER_FAILURE = "Trigger failure"
"""``next_kwargs["error"]`` of a trigger that raised or ended without an event."""


@dataclass(frozen=True)
class OwnedTrigger:
    """A trigger this triggerer runs, with the deferred task instance that waits on it."""

    trigger_id: int
    classpath: str
    kwargs: str
    """JSON text (XCom's types)."""
    ti_id: int
    try_number: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    next_kwargs: str | None
    """The task instance's ``next_kwargs`` (JSON text): the event is added to them."""
    log_path: str | None
    """The try's log file (the triggerer appends its lines about the trigger)."""


def register_triggerer(session: Session, capacity: int, now: datetime) -> int:
    """Insert this process's ``triggerer_job`` row; return its id."""
    job = TriggererJob(
        hostname=socket.gethostname(),
        pid=os.getpid(),
        started_at=now,
        heartbeat_at=now,
        capacity=capacity,
        triggers_running=0,
    )
    session.add(job)
    session.flush()
    return int(job.id)


def heartbeat(
    session: Session,
    job_id: int,
    now: datetime,
    *,
    running: int,
    lag_p99: float | None,
    lag_max: float | None,
) -> bool:
    """Stamp the triggerer's heartbeat and loop figures (seconds); False if its row ended (it must stop)."""
    result = session.execute(
        update(TriggererJob)
        .where(TriggererJob.id == job_id, TriggererJob.ended_at.is_(None))
        .values(heartbeat_at=now, triggers_running=running, loop_lag_p99=lag_p99, loop_lag_max=lag_max)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def record_block(
    session: Session, job_id: int, now: datetime, seconds: float, trigger_id: int | None, detail: str
) -> None:
    """Record on the triggerer's row that a trigger held its event loop for ``seconds``."""
    session.execute(
        update(TriggererJob)
        .where(TriggererJob.id == job_id)
        .values(blocked_at=now, blocked_seconds=seconds, blocked_trigger_id=trigger_id, blocked_detail=detail)
    )


def end_triggerer(session: Session, job_id: int, now: datetime) -> None:
    """Mark the triggerer ended and give its triggers back (another triggerer claims them at once)."""
    session.execute(update(TriggererJob).where(TriggererJob.id == job_id).values(ended_at=now))
    session.execute(update(Trigger).where(Trigger.triggerer_id == job_id).values(triggerer_id=None))


def _alive(now: datetime, dead_after: float) -> Any:
    return select(TriggererJob.id).where(
        TriggererJob.ended_at.is_(None), TriggererJob.heartbeat_at >= now - timedelta(seconds=dead_after)
    )


def claim_triggers(session: Session, job_id: int, capacity: int, now: datetime, dead_after: float) -> int:
    """Claim up to ``capacity`` minus what this triggerer holds of unowned triggers, and of triggers whose
    triggerer's heartbeat is older than ``dead_after`` seconds (or that ended); return how many it claimed.

    Compare-and-set per candidate's owner as read, so two triggerers never both win a trigger.
    """
    held = session.scalar(select(func.count()).select_from(Trigger).where(Trigger.triggerer_id == job_id)) or 0
    room = capacity - int(held)
    if room <= 0:
        return 0
    alive = _alive(now, dead_after)
    candidates = session.execute(
        select(Trigger.id, Trigger.triggerer_id)
        .where(or_(Trigger.triggerer_id.is_(None), Trigger.triggerer_id.not_in(alive)))
        .order_by(Trigger.id)
        .limit(room)
    ).all()
    claimed = 0
    by_owner: dict[int | None, list[int]] = {}
    for trigger_id, owner in candidates:
        by_owner.setdefault(owner, []).append(int(trigger_id))
    for owner, ids in by_owner.items():
        guard = Trigger.triggerer_id.is_(None) if owner is None else Trigger.triggerer_id == owner
        result = session.execute(
            update(Trigger)
            .where(Trigger.id.in_(ids), guard)
            .values(triggerer_id=job_id)
            .execution_options(synchronize_session=False)
        )
        claimed += int(result.rowcount)  # type: ignore[attr-defined]
    return claimed


_OWNED = (
    select(
        Trigger.id,
        Trigger.classpath,
        Trigger.kwargs,
        TaskInstance.id,
        TaskInstance.try_number,
        TaskInstance.dag_id,
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.map_index,
        TaskInstance.next_kwargs,
        TaskTry.log_path,
    )
    .join(TaskInstance, and_(TaskInstance.trigger_id == Trigger.id, TaskInstance.state == TI.DEFERRED.value))
    .outerjoin(
        TaskTry, and_(TaskTry.task_instance_id == TaskInstance.id, TaskTry.try_number == TaskInstance.try_number)
    )
)


def owned_triggers(session: Session, job_id: int, known: Iterable[int] = ()) -> tuple[set[int], list[OwnedTrigger]]:
    """The ids of the triggers this triggerer owns that a deferred task instance still waits on, and the full
    rows of those not in ``known`` (one cheap id query per sync; the rows only for new ones)."""
    ids = set(
        session.scalars(
            select(Trigger.id)
            .join(TaskInstance, and_(TaskInstance.trigger_id == Trigger.id, TaskInstance.state == TI.DEFERRED.value))
            .where(Trigger.triggerer_id == job_id)
        )
    )
    new = sorted(ids.difference(known))
    rows: list[OwnedTrigger] = []
    for start in range(0, len(new), 500):
        chunk = new[start : start + 500]
        rows += [OwnedTrigger(*row) for row in session.execute(_OWNED.where(Trigger.id.in_(chunk))).all()]
    return ids, rows


def delete_unused_triggers(session: Session) -> int:
    """Delete triggers no deferred task instance waits on (its task instance was cleared, marked or moved
    on); return how many. The triggerer running one cancels it at its next sync."""
    used = select(TaskInstance.trigger_id).where(
        TaskInstance.state == TI.DEFERRED.value, TaskInstance.trigger_id.is_not(None)
    )
    result = session.execute(
        delete(Trigger).where(Trigger.id.not_in(used)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _resume(
    session: Session,
    job_id: int | None,
    trigger: OwnedTrigger | tuple[int, int, int],
    next_method: str | None,
    next_kwargs: dict[str, Any],
    now: datetime,
) -> bool:
    """Delete the trigger row (as its owner ``job_id``; None: whoever owns it) and send its task instance
    back to ``scheduled`` with ``next_kwargs`` (and ``next_method`` if given); True if this call did."""
    if isinstance(trigger, OwnedTrigger):
        trigger_id, ti_id, try_number = trigger.trigger_id, trigger.ti_id, trigger.try_number
    else:
        trigger_id, ti_id, try_number = trigger
    stmt = delete(Trigger).where(Trigger.id == trigger_id)
    if job_id is not None:
        stmt = stmt.where(Trigger.triggerer_id == job_id)
    if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        return False  # not ours any more (taken over, or already delivered)
    values: dict[str, Any] = {"next_kwargs": json.dumps(next_kwargs), "updated_at": now}
    if next_method is not None:
        values["next_method"] = next_method
    won = set_ti_state(session, ti_id, TI.DEFERRED, TI.SCHEDULED, expected_try_number=try_number, **values)
    if won:
        notify_scheduler(session)
    return won


def deliver_events(session: Session, job_id: int, fired: Sequence[tuple[OwnedTrigger, Any]], now: datetime) -> set[int]:
    """Deliver many triggers' events in the caller's transaction (each ``(trigger, encoded payload)``): remove
    the triggers this triggerer still owns (one ``DELETE … RETURNING``) and resume their task instances with
    ``event`` added to ``next_kwargs`` (one executemany compare-and-set). Returns the ids of the triggers
    delivered; the others were not this triggerer's any more."""
    if not fired:
        return set()
    deleted = set(
        session.scalars(
            delete(Trigger)
            .where(Trigger.id.in_([o.trigger_id for o, _ in fired]), Trigger.triggerer_id == job_id)
            .returning(Trigger.id)
        )
    )
    changes = []
    for owned, payload in fired:
        if owned.trigger_id in deleted:
            kwargs = dict(json.loads(owned.next_kwargs)) if owned.next_kwargs else {}
            kwargs["event"] = payload
            changes.append((owned.ti_id, owned.try_number, {"next_kwargs": json.dumps(kwargs), "updated_at": now}))
    set_ti_states_each(session, changes, TI.DEFERRED, TI.SCHEDULED)
    if changes:
        notify_scheduler(session)
    return deleted


def deliver_event(session: Session, job_id: int, trigger: OwnedTrigger, payload: Any, now: datetime) -> bool:
    """Deliver a trigger's event (``payload``: already encoded with XCom's types): in the caller's transaction,
    remove the trigger (only if this triggerer owns it) and resume its task instance with ``event=payload``
    added to its ``next_kwargs``. Returns whether it was delivered (False: not owned, or the task instance
    moved on)."""
    kwargs = dict(json.loads(trigger.next_kwargs)) if trigger.next_kwargs else {}
    kwargs["event"] = payload
    return _resume(session, job_id, trigger, None, kwargs, now)


def submit_failure(
    session: Session, job_id: int, trigger: OwnedTrigger, error: str, traceback_lines: Sequence[str], now: datetime
) -> bool:
    """A trigger raised (or ended without an event): resume its task instance in ``__fail__`` with the error
    and traceback, so the task fails through its normal try path (log, callbacks, retries). Owner-guarded as
    :func:`deliver_event`."""
    kwargs = {"error": error, "traceback": list(traceback_lines)}
    return _resume(session, job_id, trigger, TRIGGER_FAIL_REPR, kwargs, now)


def fail_timed_out_deferrals(session: Session, now: datetime) -> int:
    """Resume every deferred task instance whose ``trigger_timeout`` has passed in ``__fail__`` with error
    ``Trigger timeout`` (the task then raises ``TaskDeferralTimeout``; a sensor ``SensorTimeout``); remove
    their triggers. Returns how many. The scheduler's ``check_trigger_timeouts`` chore."""
    rows = session.execute(
        select(TaskInstance.trigger_id, TaskInstance.id, TaskInstance.try_number).where(
            TaskInstance.state == TI.DEFERRED.value,
            TaskInstance.trigger_timeout.is_not(None),
            TaskInstance.trigger_timeout < now,
        )
    ).all()
    done = 0
    for trigger_id, ti_id, try_number in rows:
        kwargs = {"error": TRIGGER_TIMEOUT}
        if trigger_id is None:
            done += set_ti_state(
                session,
                ti_id,
                TI.DEFERRED,
                TI.SCHEDULED,
                expected_try_number=try_number,
                next_method=TRIGGER_FAIL_REPR,
                next_kwargs=json.dumps(kwargs),
            )
        else:
            done += _resume(
                session, None, (int(trigger_id), int(ti_id), int(try_number)), TRIGGER_FAIL_REPR, kwargs, now
            )
    return done


@dataclass(frozen=True)
class TriggerStart:
    """A try of a task that starts in the triggerer, as the scheduler starts it (:func:`start_in_triggerer`)."""

    ti_id: int
    try_number: int
    """The task instance's ``try_number`` before this try (the try is ``try_number + 1``)."""
    dag_run_pk: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    log_path: str
    """The new try's log file (the triggerer appends its lines about the trigger)."""
    next_method: str
    next_kwargs: str | None
    """JSON text (XCom's types), None: none."""
    timeout: float | None
    """Seconds the wait may last (None: no limit)."""
    trigger: tuple[str, str] | None
    """``(classpath, kwargs as JSON text)``; None when the trigger could not be made (see ``failure``)."""
    failure: tuple[str, list[str]] | None = None
    """``(error, traceback lines)`` when the trigger could not be made (its kwargs would not render): the try
    fails as one whose trigger failed — it resumes in ``__fail__`` at once."""


def start_in_triggerer(session: Session, start: TriggerStart, now: datetime) -> bool:
    """Start a try with no process, in the caller's transaction; return whether the task instance took it.

    Inserts the trigger row, then ``scheduled → deferred`` (compare-and-set on ``start.try_number``) with
    ``try_number + 1``, ``start_date = now``, the trigger, ``next_method`` / ``next_kwargs`` and
    ``trigger_timeout``; then the try's ``task_try`` row, ended ``deferred`` with no host and no process
    (hostname ``""``, pids unset: the resumed process's supervisor reopens it), and removes the XComs of the
    task instance's earlier try (a new try starts clean). With ``start.failure`` no trigger row is written and
    the task instance goes on to ``scheduled`` in ``__fail__`` with the error (it fails in a process, retries
    apply). A lost compare-and-set writes nothing.
    """
    trigger_id: int | None = None
    if start.trigger is not None:
        row = Trigger(classpath=start.trigger[0], kwargs=start.trigger[1], created_date=now)
        session.add(row)
        session.flush()
        trigger_id = int(row.id)
    new_try = start.try_number + 1
    won = set_ti_state(
        session,
        start.ti_id,
        TI.SCHEDULED,
        TI.DEFERRED,
        expected_try_number=start.try_number,
        try_number=new_try,
        start_date=now,
        end_date=None,
        end_reason=None,
        queued_at=None,
        trigger_id=trigger_id,
        trigger_timeout=now + timedelta(seconds=start.timeout) if start.timeout is not None else None,
        next_method=start.next_method,
        next_kwargs=start.next_kwargs,
        updated_at=now,
    )
    if not won:
        if trigger_id is not None:
            session.execute(delete(Trigger).where(Trigger.id == trigger_id))
        return False
    session.add(
        TaskTry(
            task_instance_id=start.ti_id,
            dag_id=start.dag_id,
            run_id=start.run_id,
            task_id=start.task_id,
            map_index=start.map_index,
            try_number=new_try,
            state=TI.DEFERRED.value,
            hostname="",
            supervisor_pid=0,
            supervisor_start_time=0.0,
            start_date=now,
            end_date=now,
            heartbeat_at=now,
            end_reason=EndReason.DEFERRED.value,
            log_path=start.log_path,
        )
    )
    for table in (XCom, TaskMap):
        session.execute(
            delete(table).where(
                table.dag_run_id == start.dag_run_pk, table.task_id == start.task_id, table.map_index == start.map_index
            )
        )
    if start.failure is not None:
        error, lines = start.failure
        set_ti_state(
            session,
            start.ti_id,
            TI.DEFERRED,
            TI.SCHEDULED,
            expected_try_number=new_try,
            next_method=TRIGGER_FAIL_REPR,
            next_kwargs=json.dumps({"error": error, "traceback": list(lines)}),
            updated_at=now,
        )
    return True


def earliest_trigger_timeout(conn: Connection | Session) -> datetime | None:
    """The soonest ``trigger_timeout`` of a deferred task instance (None: none)."""
    when: datetime | None = conn.scalar(
        select(func.min(TaskInstance.trigger_timeout)).where(TaskInstance.state == TI.DEFERRED.value)
    )
    return when


def trigger_count(conn: Connection | Session) -> int:
    """How many ``trigger`` rows exist (``headrace standalone`` runs a triggerer while there are some)."""
    return int(conn.scalar(select(func.count()).select_from(Trigger)) or 0)


def live_triggerers(session: Session, now: datetime, dead_after: float) -> list[TriggererJob]:
    """Triggerer jobs whose heartbeat is at most ``dead_after`` seconds old and that have not ended."""
    return list(
        session.scalars(
            select(TriggererJob).where(
                TriggererJob.ended_at.is_(None), TriggererJob.heartbeat_at >= now - timedelta(seconds=dead_after)
            )
        )
    )


__all__ = [
    "TRIGGER_FAILURE",
    "TRIGGER_FAIL_REPR",
    "TRIGGER_TIMEOUT",
    "OwnedTrigger",
    "TriggerStart",
    "claim_triggers",
    "deliver_event",
    "deliver_events",
    "delete_unused_triggers",
    "earliest_trigger_timeout",
    "end_triggerer",
    "fail_timed_out_deferrals",
    "heartbeat",
    "live_triggerers",
    "owned_triggers",
    "record_block",
    "register_triggerer",
    "start_in_triggerer",
    "submit_failure",
    "trigger_count",
]
