"""Deadlines: find DAG runs and task instances not finished by their ``deadline``, record each miss once.

A DAG or task declares ``deadline=timedelta(...)`` and ``deadline_reference``
(``"logical_date"``, the default, or ``"run_start"``); the deadline of a run
(or of a task instance in it) is that reference time plus the interval.
:func:`check_deadlines` — a scheduler housekeeping chore — looks at DAG runs
that are queued or running, or ended within ``lookback`` seconds, of DAG
versions that have a deadline, and finds:

* a run, or task instance, still unfinished after its deadline;
* one that finished *after* its deadline (a late finish is a miss too).

For each it inserts a ``deadline_miss`` row (unique on ``(dag_run_id,
task_id)``, ``task_id = ""`` for the DAG run; ``ON CONFLICT DO NOTHING``) and,
only if this call inserted it, a ``deadline_missed`` notification in the same
transaction (:mod:`~headrace.observability.notifications`). Then every miss
whose ``callback_done`` is still False is claimed with a compare-and-set to
True and, if the DAG or task has ``on_deadline_miss_callback``, returned as a
:class:`DeadlineCallback` for the scheduler to run in a forked child. So with
two schedulers, repeated checks or a restart, each miss is recorded, notified
and called back exactly once (a crash between the claim and the fork loses
that callback rather than running it twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from headrace.authoring.context import RunInfo as ContextRunInfo
from headrace.dagfiles.serialization import Deadline, SerializedDag
from headrace.db.engine import Database
from headrace.db.models import DagRun, DeadlineMiss, TaskInstance
from headrace.observability import notifications
from headrace.observability.listener import DeadlineMissInfo
from headrace.observability.notifications import Alert, AlertConfig
from headrace.states import DagRunState, TaskInstanceState

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK = 3600.0
"""Seconds: runs that ended this long ago are still checked for a late finish."""

_TI_FINISHED = frozenset(
    {
        TaskInstanceState.SUCCESS.value,
        TaskInstanceState.FAILED.value,
        TaskInstanceState.SKIPPED.value,
        TaskInstanceState.UPSTREAM_FAILED.value,
        TaskInstanceState.REMOVED.value,
    }
)
_RUN_OPEN = (DagRunState.QUEUED.value, DagRunState.RUNNING.value)

GetDag = Callable[[Session, int], SerializedDag]
"""``get_dag(session, dag_version_id)``: the serialized DAG of a version (e.g. ``DagCache.get``)."""


@dataclass(frozen=True)
class DeadlineCallback:
    """A deadline-miss callback to run (in a forked child, by the scheduler's CallbackRunner)."""

    fileloc: str
    dag_id: str
    run: ContextRunInfo
    task_id: str | None
    """None: the DAG's ``on_deadline_miss_callback``; else that task's."""
    deadline: datetime


@dataclass(frozen=True)
class DeadlineCheck:
    """What one :func:`check_deadlines` found."""

    misses: list[DeadlineMissInfo]
    """Misses this call recorded (not those recorded before)."""
    callbacks: list[DeadlineCallback]
    """Callbacks this call claimed; the caller must start them."""


def deadline_of(deadline: Deadline, run: Any) -> datetime | None:
    """The deadline time for ``run`` (has ``logical_date``, ``start_date``); None if its reference is unknown yet."""
    ref = run.logical_date if deadline.reference == "logical_date" else run.start_date
    return None if ref is None else ref + timedelta(seconds=deadline.interval)


def _missed(deadline: datetime | None, finished: bool, end: datetime | None, now: datetime) -> bool:
    if deadline is None or now <= deadline:
        return False
    return not finished or (end is not None and end > deadline)


def _insert_miss(session: Session, values: dict[str, Any]) -> bool:
    """Insert one ``deadline_miss`` row unless it exists; True if this call inserted it."""
    dialect = session.get_bind().dialect.name
    maker: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        maker(DeadlineMiss)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dag_run_id", "task_id"])
        .returning(DeadlineMiss.id)
    )
    return session.execute(stmt).first() is not None  # RETURNING: psycopg reports no rowcount here


def _candidates(session: Session, now: datetime, lookback: float, get_dag: GetDag) -> list[tuple[Any, SerializedDag]]:
    since = now - timedelta(seconds=lookback)
    rows = session.execute(
        select(
            DagRun.id,
            DagRun.dag_id,
            DagRun.run_id,
            DagRun.run_type,
            DagRun.dag_version_id,
            DagRun.state,
            DagRun.logical_date,
            DagRun.start_date,
            DagRun.end_date,
            DagRun.queued_at,
            DagRun.data_interval_start,
            DagRun.data_interval_end,
            DagRun.conf,
        ).where(or_(DagRun.state.in_(_RUN_OPEN), DagRun.end_date >= since))
    ).all()
    out = []
    for row in rows:
        sdag = get_dag(session, row.dag_version_id)
        if sdag.has_deadlines:
            out.append((row, sdag))
    return out


def _find(
    session: Session, now: datetime, candidates: list[tuple[Any, SerializedDag]]
) -> list[tuple[Any, str, datetime, bool]]:
    """``(run, task_id or "", deadline, finished)`` of every miss among ``candidates`` not yet recorded."""
    run_ids = [run.id for run, _ in candidates]
    known: set[tuple[int, str]] = {
        (run_pk, task_id)
        for run_pk, task_id in session.execute(
            select(DeadlineMiss.dag_run_id, DeadlineMiss.task_id).where(DeadlineMiss.dag_run_id.in_(run_ids))
        )
    }
    wanted_tis = [run.id for run, sdag in candidates if any(t.deadline for t in sdag.tasks.values())]
    tis: dict[int, list[Any]] = {}
    if wanted_tis:
        for ti in session.execute(
            select(TaskInstance.dag_run_id, TaskInstance.task_id, TaskInstance.state, TaskInstance.end_date).where(
                TaskInstance.dag_run_id.in_(wanted_tis)
            )
        ):
            tis.setdefault(ti.dag_run_id, []).append(ti)
    found = []
    for run, sdag in candidates:
        run_done = run.state not in _RUN_OPEN
        if sdag.deadline is not None and (run.id, "") not in known:
            when = deadline_of(sdag.deadline, run)
            if _missed(when, run_done, run.end_date, now):
                assert when is not None
                found.append((run, "", when, run_done))
        for ti in tis.get(run.id, []):
            task = sdag.tasks.get(ti.task_id)
            if task is None or task.deadline is None or (run.id, ti.task_id) in known:
                continue
            when = deadline_of(task.deadline, run)
            done = ti.state in _TI_FINISHED
            if _missed(when, done, ti.end_date, now):
                assert when is not None
                found.append((run, ti.task_id, when, done))
                known.add((run.id, ti.task_id))  # a mapped task misses once, whichever index missed first
    return found


def _claim_callbacks(session: Session, get_dag: GetDag, limit: int = 100) -> list[DeadlineCallback]:
    """Claim misses whose callback was not started (``callback_done`` CAS); return those that have one."""
    pending = session.execute(
        select(
            DeadlineMiss.id,
            DeadlineMiss.task_id,
            DeadlineMiss.deadline,
            DagRun.id.label("run_pk"),
            DagRun.dag_id,
            DagRun.run_id,
            DagRun.run_type,
            DagRun.dag_version_id,
            DagRun.logical_date,
            DagRun.queued_at,
            DagRun.data_interval_start,
            DagRun.data_interval_end,
            DagRun.conf,
        )
        .join(DagRun, DagRun.id == DeadlineMiss.dag_run_id)
        .where(DeadlineMiss.callback_done.is_(False))
        .order_by(DeadlineMiss.id)
        .limit(limit)
    ).all()
    out = []
    for row in pending:
        won = (
            session.execute(
                update(DeadlineMiss)
                .where(DeadlineMiss.id == row.id, DeadlineMiss.callback_done.is_(False))
                .values(callback_done=True)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            == 1
        )
        if not won:
            continue
        sdag = get_dag(session, row.dag_version_id)
        task = sdag.tasks.get(row.task_id) if row.task_id else None
        wanted = (
            task.has_on_deadline_miss_callback
            if task is not None
            else (not row.task_id and sdag.has_on_deadline_miss_callback)
        )
        if wanted:
            out.append(
                DeadlineCallback(
                    sdag.fileloc, row.dag_id, ContextRunInfo.from_run(row), row.task_id or None, row.deadline
                )
            )
    return out


def check_deadlines(
    db: Database,
    now: datetime,
    *,
    get_dag: GetDag,
    alerts: AlertConfig | None = None,
    lookback: float = DEFAULT_LOOKBACK,
) -> DeadlineCheck:
    """Record new deadline misses (with their notification) and claim pending callbacks. See the module docstring.

    ``now`` is UTC-aware. Everything happens in one transaction.
    """
    misses: list[DeadlineMissInfo] = []
    with db.session() as session:
        candidates = _candidates(session, now, lookback, get_dag)
        for run, task_id, when, finished in _find(session, now, candidates) if candidates else []:
            if not _insert_miss(
                session,
                dict(
                    dag_run_id=run.id,
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    task_id=task_id,
                    deadline=when,
                    detected_at=now,
                    callback_done=False,
                ),
            ):
                continue
            info = DeadlineMissInfo(
                dag_id=run.dag_id,
                run_id=run.run_id,
                task_id=task_id or None,
                deadline=when,
                detected_at=now,
                finished=finished,
            )
            misses.append(info)
            log.warning(
                "deadline missed: %s%s run %s (deadline %s%s)",
                run.dag_id,
                f".{task_id}" if task_id else "",
                run.run_id,
                when.isoformat(),
                ", finished late" if finished else "",
            )
            if alerts is not None:
                notifications.write(
                    session,
                    alerts,
                    Alert(
                        event="deadline_missed",
                        dag_id=run.dag_id,
                        run_id=run.run_id,
                        task_id=task_id or None,
                        detail=f"deadline {when.isoformat()} "
                        f"({'finished late' if finished else 'not finished at ' + now.isoformat()})",
                    ),
                    now,
                )
        callbacks = _claim_callbacks(session, get_dag)
    return DeadlineCheck(misses, callbacks)


__all__ = ["DEFAULT_LOOKBACK", "DeadlineCallback", "DeadlineCheck", "GetDag", "check_deadlines", "deadline_of"]
