"""Housekeeping: the periodic chores of a scheduler, declared once as ``(interval, function)``.

:func:`chores` lists them with intervals from the settings:

=====================  ================================  =========================================
chore                  interval                          what it does
=====================  ================================  =========================================
``heartbeat``          ``scheduler.heartbeat_interval``  stamp this scheduler_job's ``heartbeat_at``
``renew_lease``        ``scheduler.lease_ttl / 3``       extend this scheduler's lease (SQLite)
``adopt_orphans``      orphaned_tasks_check_interval     requeue unclaimed tries of dead schedulers (PG)
``find_zombies``       ``scheduler.heartbeat_interval``  fail or retry running tries whose supervisor is gone
``requeue_stuck``      ``task_queued_timeout / 4``       give back tries queued too long without starting
``check_deadlines``    ``scheduler.heartbeat_interval``  record deadline misses once; start their callbacks
``enforce_dagrun_timeouts`` ``heartbeat_interval``       fail runs older than their ``dagrun_timeout``
``sweep_alerts``       ``scheduler.heartbeat_interval``  write the alerts of tries / runs that ended unseen
``check_trigger_timeouts`` ``trigger_timeout_check_interval`` resume deferrals past their timeout, to fail
=====================  ================================  =========================================

``sweep_alerts`` (:class:`~headrace.observability.sweep.NotificationSweep`)
is registered only when an alert channel (``alerts.email_to`` /
``alerts.webhook_url``) is configured; its first run looks back
``alerts.sweep_lookback`` seconds, so tries that ended while no scheduler ran
still notify, once.

:class:`Housekeeping.run_due` runs the chores that are due at ``now`` and
schedules each one ``interval`` later; a chore that fell behind (a long loop,
a suspended laptop) runs once, not once per missed interval.

A *zombie* is a running try whose supervisor is gone: on this host, its
recorded ``(pid, start time)`` names no live process; on another host, its
heartbeat is older than ``scheduler.task_instance_heartbeat_timeout`` (counted
from the scheduler's last reconnect at the earliest). Before anything else the
try is *fenced*: what is left of its task process group on this host is
SIGKILLed (:mod:`headrace.supervisor.fencing`). An outcome its supervisor left
on disk (it died waiting for the database) is recorded as it was. Else it moves
``running → up_for_retry`` (``next_retry_at`` from the task's retry delay) when
``try_number <= max_tries``, else ``running → failed``, with end reason
``zombie`` on the task instance and its ``task_try`` row. All changes are
compare-and-set on ``(state, try_number)``, so a supervisor that finishes in
the same instant wins or loses cleanly and nothing is recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from headrace.config import Settings
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagRun, SchedulerJob, TaskInstance, TaskTry
from headrace.db.outage import is_outage
from headrace.db.transitions import end_try, requeue_ti, set_ti_state
from headrace.db.triggers import fail_timed_out_deferrals
from headrace.observability.notifications import AlertConfig
from headrace.observability.sweep import NotificationSweep
from headrace.scheduler import lease
from headrace.scheduler.dagcache import DagCache
from headrace.states import EndReason
from headrace.states import TaskInstanceState as TI
from headrace.supervisor import recording as outcome_file
from headrace.supervisor.fencing import fence_task_group
from headrace.supervisor.identity import ProcessIdentity

log = logging.getLogger(__name__)

CLAIM_LOST = 2
"""Supervisor exit code: another supervisor had already claimed the try (see ``headrace.executors.base``)."""


ZombieHook = Callable[[TaskInstance, "TaskTry | None", TI, str, datetime], None]
"""Called after a try was ended as a zombie: ``(ti, task_try or None, new state, why, now)``."""


@dataclass
class Chore:
    """One periodic chore: ``function(now) -> count`` every ``interval`` seconds."""

    name: str
    interval: float
    """Seconds between runs."""
    function: Callable[[datetime], int]
    next_due: datetime | None = None
    """When it runs next; None: at the first ``run_due``."""


class Housekeeping:
    """Runs each :class:`Chore` when it is due."""

    def __init__(self, chores: list[Chore]) -> None:
        self.chores = chores

    def run_due(self, now: datetime) -> int:
        """Run every chore due at ``now``; return the sum of their counts.

        A chore that raises is logged and retried at its next interval; the
        scheduler keeps going. A lost database (:func:`~headrace.db.outage.is_outage`)
        is not a chore's failure: it propagates, for the loop to wait and reconnect.
        """
        total = 0
        for chore in self.chores:
            if chore.next_due is not None and chore.next_due > now:
                continue
            try:
                total += chore.function(now)
            except Exception as exc:  # noqa: BLE001 — one failing chore must not stop the scheduler
                if is_outage(exc):
                    raise
                log.exception("housekeeping chore %s failed", chore.name)
            step = timedelta(seconds=chore.interval)
            chore.next_due = now + step if chore.next_due is None else max(chore.next_due + step, now)
            if chore.next_due <= now:
                chore.next_due = now + step
        return total

    def next_due(self) -> datetime | None:
        """The earliest time a chore is due (None before the first run)."""
        dues = [c.next_due for c in self.chores if c.next_due is not None]
        return min(dues) if len(dues) == len(self.chores) and dues else None


# --- zombies ---------------------------------------------------------------------


def _retry_delay(session: Session, ti: TaskInstance, cache: DagCache) -> float:
    run = session.get(DagRun, ti.dag_run_id)
    if run is None:
        return 0.0
    task = cache.get(session, run.dag_version_id).tasks.get(ti.task_id)
    return task.retry_delay_for(ti.try_number) if task is not None else 0.0


def _task_identity(tt: TaskTry) -> ProcessIdentity | None:
    if tt.pid is None or tt.process_start_time is None:
        return None
    return ProcessIdentity(host=tt.hostname, pid=tt.pid, start_time=tt.process_start_time)


def fence(tt: TaskTry | None) -> bool:
    """Make sure nothing of the try ``tt`` still runs on this host; True when so (or when it is not ours to check).

    The recorded task process's group is SIGKILLed (:func:`~headrace.supervisor.fencing.fence_task_group`,
    which checks the process start time so a reused pid is left alone). A
    try on another host is fenced by time instead: the caller only ends it
    once its heartbeat is older than ``task_instance_heartbeat_timeout``.
    """
    if tt is None:
        return True
    task = _task_identity(tt)
    if task is None or not task.is_local():
        return True
    return fence_task_group(task)


def end_try_as_zombie(
    session: Session,
    ti: TaskInstance,
    tt: TaskTry | None,
    now: datetime,
    cache: DagCache,
    *,
    why: str,
    on_zombie: ZombieHook | None = None,
    home: Path | None = None,
) -> bool:
    """End the current try of ``ti`` (queued or running) as a zombie; return whether this call won.

    First the try is fenced (:func:`fence`): its task processes on this host
    are killed, so a retry can never run beside it; if one survives SIGKILL
    the try is left for the next check and False is returned. If its
    supervisor left the outcome on local disk (it died while waiting for the
    database; ``home`` is ``settings.home``), that outcome is recorded instead
    of a zombie (returns True too). Otherwise ``up_for_retry`` if
    ``try_number <= max_tries`` (with ``next_retry_at``), else ``failed``;
    the ``task_try`` row, if any, is closed with end reason ``zombie`` unless
    its supervisor closed it first (:func:`~headrace.db.transitions.end_try`).
    """
    if not fence(tt):
        log.error(
            "zombie: %s.%s run %s try %d (%s): its processes would not die; not retrying it yet",
            ti.dag_id,
            ti.task_id,
            ti.run_id,
            ti.try_number,
            why,
        )
        return False
    if home is not None and tt is not None and ti.state == TI.RUNNING.value:
        kept_outcome = outcome_file.kept(home, ti.id, ti.try_number)
        if kept_outcome is not None and kept_outcome.try_row_id == tt.id:
            won = outcome_file.apply(session, kept_outcome)
            # The file goes only once the outcome is committed: a rolled-back transaction must find it again.
            ti_id, try_number = ti.id, ti.try_number
            event.listen(session, "after_commit", lambda _s: outcome_file.forget(home, ti_id, try_number), once=True)
            log.warning(
                "%s.%s run %s try %d: its supervisor is gone (%s) but left its outcome on disk: %s",
                ti.dag_id,
                ti.task_id,
                ti.run_id,
                ti.try_number,
                why,
                kept_outcome.state,
            )
            return won
    expected = TI(ti.state)
    if ti.try_number <= ti.max_tries:
        new = TI.UP_FOR_RETRY
        extra = {"next_retry_at": now + timedelta(seconds=_retry_delay(session, ti, cache))}
    else:
        new, extra = TI.FAILED, {}
    won = set_ti_state(
        session,
        ti.id,
        expected,
        new,
        expected_try_number=ti.try_number,
        end_date=now,
        end_reason=EndReason.ZOMBIE.value,
        updated_at=now,
        **extra,
    )
    if not won:
        return False
    if tt is not None:
        end_try(session, tt.id, end_date=now, end_reason=EndReason.ZOMBIE.value, state=new.value, error=why)
    log.warning(
        "zombie: %s.%s run %s try %d (%s) → %s", ti.dag_id, ti.task_id, ti.run_id, ti.try_number, why, new.value
    )
    if on_zombie is not None:
        on_zombie(ti, tt, new, why, now)
    return True


def _identity(tt: TaskTry) -> ProcessIdentity:
    return ProcessIdentity(host=tt.hostname, pid=tt.supervisor_pid, start_time=tt.supervisor_start_time)


def zombie_reason(
    ti: TaskInstance, tt: TaskTry | None, now: datetime, threshold: float, *, judge_heartbeats: bool = True
) -> str | None:
    """Why the running try of ``ti`` is a zombie, or None if it looks alive.

    On this host the recorded supervisor is checked by process identity
    (pid + start time) and only that counts: a live supervisor whose
    heartbeats cannot reach the database (an outage) is not a zombie. On
    another host only the heartbeat tells: older than ``threshold`` seconds
    (never judged when ``judge_heartbeats`` is False).
    """
    limit = now - timedelta(seconds=threshold)
    if tt is None:
        stamp = ti.updated_at or ti.queued_at
        if stamp is not None and stamp < limit:
            return f"running for over {threshold:g} s with no task_try row"
        return None
    who = _identity(tt)
    if who.is_local():
        return None if who.is_alive() else f"supervisor {who} is gone"
    if judge_heartbeats and tt.heartbeat_at < limit:
        return f"no heartbeat from supervisor {who} since {tt.heartbeat_at.isoformat()}"
    return None


def find_zombies(
    db: Database,
    now: datetime,
    *,
    threshold: float,
    cache: DagCache,
    on_zombie: ZombieHook | None = None,
    home: Path | None = None,
    connected_since: Callable[[], datetime] | None = None,
) -> int:
    """End every running try whose supervisor is gone; return how many were ended.

    ``connected_since()`` (the scheduler's) is when this scheduler last
    (re)connected to the database: heartbeats that could not be written
    during an outage do not count against tries on other hosts, so those are
    judged only once the scheduler has been connected for ``threshold``
    seconds.
    """
    # Too soon after a reconnect to blame a try on another host for a missing heartbeat.
    judge = connected_since is None or (now - connected_since()).total_seconds() >= threshold
    ended = 0
    with db.session() as session:
        for ti, tt in queries.tis_with_latest_try(session, TI.RUNNING):
            why = zombie_reason(ti, tt, now, threshold, judge_heartbeats=judge)
            if why is not None:
                ended += end_try_as_zombie(session, ti, tt, now, cache, why=why, on_zombie=on_zombie, home=home)
    return ended


def continues_try(ti: TaskInstance) -> bool:
    """Whether ``ti``'s coming (or current) try continues its ``try_number``: a sensor's next poke in reschedule
    mode (``reschedule_date`` set) or a deferred task resuming (``next_method`` set)."""
    return ti.reschedule_date is not None or ti.next_method is not None


def _unclaimed(ti: TaskInstance, tt: TaskTry | None) -> bool:
    """A queued try no supervisor claimed: it has no ``task_try`` row yet, or it is a sensor's next poke
    (``reschedule_date`` set) or a resumed deferral (``next_method`` set) whose try row the previous part
    ended."""
    return tt is None or (continues_try(ti) and tt.end_date is not None)


def requeue_try(session: Session, ti: TaskInstance) -> bool:
    """Give a queued try that never started back to the scheduler: ``queued → scheduled``, ``try_number - 1``."""
    return requeue_ti(session, ti.id, ti.try_number)


def requeue_stuck(db: Database, now: datetime, *, timeout: float) -> int:
    """Requeue tries queued longer than ``timeout`` s that no supervisor claimed; return how many."""
    count = 0
    with db.session() as session:
        for ti, tt in queries.tis_with_latest_try(session, TI.QUEUED, queued_before=now - timedelta(seconds=timeout)):
            if _unclaimed(ti, tt) and requeue_try(session, ti):
                log.warning(
                    "%s.%s run %s try %d was queued over %g s without starting; scheduled again",
                    ti.dag_id,
                    ti.task_id,
                    ti.run_id,
                    ti.try_number,
                    timeout,
                )
                count += 1
    return count


@dataclass(frozen=True)
class AdoptionStats:
    """What :func:`adopt_or_fail_tries` found at scheduler start."""

    adopted: int
    """Running tries whose supervisor still lives; left to it."""
    zombies: int
    """Running tries whose supervisor on this host is gone; ended as zombies."""
    requeued: int
    """Queued tries no supervisor claimed; scheduled again."""


def _owner_dead(
    session: Session, ti: TaskInstance, now: datetime, threshold: float, dead: dict[int, bool], job_id: int | None
) -> bool:
    """Whether the scheduler job that queued ``ti`` is dead (:func:`~.lease.job_alive`); ``dead`` caches answers.
    A try of no known job (queued before revision 0019, or outside a scheduler) counts as dead; so does one
    of ``job_id`` (this scheduler, at its start or after an outage: ``in_executor`` decides those)."""
    owner = ti.queued_by_job_id
    if owner is None or owner == job_id:
        return True
    if owner not in dead:
        dead[owner] = not lease.job_alive(session.get(SchedulerJob, owner), now, threshold)
    return dead[owner]


def adopt_or_fail_tries(
    db: Database,
    now: datetime,
    *,
    cache: DagCache,
    on_zombie: ZombieHook | None = None,
    home: Path | None = None,
    in_executor: Callable[[int, int], bool] | None = None,
    job_id: int | None = None,
    shared_threshold: float | None = None,
) -> AdoptionStats:
    """At scheduler start: adopt live tries, end dead ones, requeue unclaimed queued ones.

    A previous scheduler's executor queue died with it, so a queued try with
    no ``task_try`` row is requeued at once — unless ``in_executor(ti_id,
    try_number)`` says the new executor holds it (a Celery executor adopts the
    tries whose messages are still in the broker). A supervisor it started that
    still claims the old try loses nothing: the claim is a compare-and-set
    on ``try_number``, so at most one supervisor runs any try. Tries on other
    hosts are left to the heartbeat check of :func:`find_zombies`. After a
    reconnect the executor's queue is still alive: ``in_executor(ti_id,
    try_number)`` (the executor's ``has``) keeps the queued tries it holds, and
    only those it never got (their queuing commit's answer was lost) are requeued.

    ``shared_threshold`` (seconds, ``scheduler_health_check_threshold``; set where several schedulers are
    active): a queued try another scheduler queued (``queued_by_job_id``) is requeued only if that scheduler
    is dead (:func:`~.lease.job_alive`) — a live one's executor still holds it. ``job_id``: this scheduler's.
    """
    adopted = zombies = requeued = 0
    with db.session() as session:
        for ti, tt in queries.tis_with_latest_try(session, TI.RUNNING):
            if tt is None or not _identity(tt).is_local():
                continue
            if _identity(tt).is_alive():
                adopted += 1
            else:
                zombies += end_try_as_zombie(
                    session,
                    ti,
                    tt,
                    now,
                    cache,
                    why=f"supervisor {_identity(tt)} is gone",
                    on_zombie=on_zombie,
                    home=home,
                )
        dead: dict[int, bool] = {}
        for ti, tt in queries.tis_with_latest_try(session, TI.QUEUED):
            if shared_threshold is not None and not _owner_dead(session, ti, now, shared_threshold, dead, job_id):
                continue
            if _unclaimed(ti, tt) and not (in_executor is not None and in_executor(ti.id, ti.try_number)):
                requeued += requeue_try(session, ti)
    stats = AdoptionStats(adopted, zombies, requeued)
    log.info(
        "at start: adopted %d running tries, ended %d zombies, requeued %d queued tries",
        stats.adopted,
        stats.zombies,
        stats.requeued,
    )
    return stats


def adopt_orphans(
    db: Database,
    now: datetime,
    *,
    job_id: int,
    threshold: float,
    in_executor: Callable[[int, int], bool] | None = None,
) -> int:
    """Give back the queued tries of schedulers that died (several schedulers, PostgreSQL); return how many.

    A try queued by another scheduler job (``queued_by_job_id``) that is dead (:func:`~.lease.job_alive`:
    ended, its process gone on this host, or on another host no heartbeat for ``threshold`` seconds) and that
    no supervisor claimed was lost with that scheduler's executor: ``queued → scheduled``
    (:func:`requeue_try`), for any scheduler to queue again. Tries of live schedulers, of this one (``job_id``)
    and of no known job are left alone (:func:`requeue_stuck` catches those after ``task_queued_timeout``), and
    so is a try ``in_executor(ti_id, try_number)`` holds (a Celery message still in the broker, which any
    scheduler's executor may watch). Running tries of dead schedulers need nothing here: their supervisors
    live on and finish them, or :func:`find_zombies` ends those whose supervisor died.
    """
    count = 0
    dead: dict[int, bool] = {}
    with db.session() as session:
        for ti, tt in queries.tis_with_latest_try(session, TI.QUEUED):
            if ti.queued_by_job_id in (None, job_id) or not _owner_dead(session, ti, now, threshold, dead, job_id):
                continue
            if not _unclaimed(ti, tt) or (in_executor is not None and in_executor(ti.id, ti.try_number)):
                continue
            if requeue_try(session, ti):
                log.warning(
                    "%s.%s run %s try %d was queued by scheduler job %d, which is gone; scheduled again",
                    ti.dag_id,
                    ti.task_id,
                    ti.run_id,
                    ti.try_number,
                    ti.queued_by_job_id,
                )
                count += 1
    return count


def end_exited_try(
    db: Database,
    now: datetime,
    ti_id: int,
    try_number: int,
    *,
    cache: DagCache,
    exit_code: int | None = None,
    on_zombie: ZombieHook | None = None,
    home: Path | None = None,
) -> bool:
    """A supervisor exited: if its try is still queued or running, end it as a zombie now.

    A supervisor writes the outcome before it exits, so a try still open
    after the exit means the supervisor died (or could not start it). Left
    alone: exit code ``CLAIM_LOST`` (another supervisor owns the try) and a
    running try whose recorded supervisor is still alive. Returns whether a
    try was ended.
    """
    if exit_code == CLAIM_LOST:
        return False
    with db.session() as session:
        ti = session.get(TaskInstance, ti_id)
        if ti is None or ti.try_number != try_number or ti.state not in (TI.QUEUED.value, TI.RUNNING.value):
            return False
        tt = queries.try_row(session, ti_id, try_number)
        if tt is not None and _identity(tt).is_alive():
            return False
        if continues_try(ti) and tt is not None and tt.end_date is not None:
            return False  # a sensor's next poke of this try, not yet claimed: the exited supervisor ran the last one
        return end_try_as_zombie(
            session,
            ti,
            tt,
            now,
            cache,
            why=f"supervisor exited (code {exit_code}) before recording an outcome",
            on_zombie=on_zombie,
            home=home,
        )


# --- the declared list ----------------------------------------------------------------


def check_trigger_timeouts(db: Database, now: datetime) -> int:
    """Resume deferred task instances past their ``trigger_timeout`` to fail (``TaskDeferralTimeout``); their
    triggers are removed. Returns how many (see :func:`headrace.db.triggers.fail_timed_out_deferrals`)."""
    with db.session() as session:
        return fail_timed_out_deferrals(session, now)


def chores(
    settings: Settings,
    db: Database,
    *,
    heartbeat: Callable[[datetime], int],
    renew_lease: Callable[[datetime], int] | None,
    cache: DagCache,
    check_deadlines: Callable[[datetime], int] | None = None,
    on_zombie: ZombieHook | None = None,
    connected_since: Callable[[], datetime] | None = None,
    enforce_dagrun_timeouts: Callable[[datetime], int] | None = None,
    adopt_orphans: Callable[[datetime], int] | None = None,
) -> list[Chore]:
    """The scheduler's chores with their intervals from ``settings``.

    ``check_deadlines(now)`` (the scheduler's, which also starts the
    deadline-miss callbacks) runs every ``scheduler.heartbeat_interval``;
    ``on_zombie`` is told about each try :func:`find_zombies` ends;
    ``connected_since()`` is when the scheduler last (re)connected.
    ``sweep_alerts`` is in the list only if an alert channel is configured. ``renew_lease`` None (several
    schedulers, PostgreSQL: no lease) leaves that chore out; ``adopt_orphans(now)`` (there) runs every
    ``scheduler.orphaned_tasks_check_interval``.
    """
    heartbeat_interval = settings.get_float("scheduler", "heartbeat_interval")
    task_instance_heartbeat_timeout = settings.get_float("scheduler", "task_instance_heartbeat_timeout")
    queued_timeout = settings.get_float("scheduler", "task_queued_timeout")
    alerts = AlertConfig.from_settings(settings)
    return (
        [
            Chore("heartbeat", heartbeat_interval, heartbeat),
            Chore(
                "find_zombies",
                heartbeat_interval,
                lambda now: find_zombies(
                    db,
                    now,
                    threshold=task_instance_heartbeat_timeout,
                    cache=cache,
                    on_zombie=on_zombie,
                    home=settings.home,
                    connected_since=connected_since,
                ),
            ),
            Chore("requeue_stuck", queued_timeout / 4, lambda now: requeue_stuck(db, now, timeout=queued_timeout)),
            Chore(
                "check_trigger_timeouts",
                settings.get_float("scheduler", "trigger_timeout_check_interval"),
                lambda now: check_trigger_timeouts(db, now),
            ),
        ]
        + (
            [Chore("renew_lease", settings.get_float("scheduler", "lease_ttl") / 3, renew_lease)]
            if renew_lease is not None
            else []
        )
        + (
            [Chore("adopt_orphans", settings.get_float("scheduler", "orphaned_tasks_check_interval"), adopt_orphans)]
            if adopt_orphans is not None
            else []
        )
        + ([Chore("check_deadlines", heartbeat_interval, check_deadlines)] if check_deadlines is not None else [])
        + (
            [Chore("enforce_dagrun_timeouts", heartbeat_interval, enforce_dagrun_timeouts)]
            if enforce_dagrun_timeouts is not None
            else []
        )
        + (
            [
                Chore(
                    "sweep_alerts",
                    heartbeat_interval,
                    NotificationSweep(db, alerts, lookback=settings.get_float("alerts", "sweep_lookback")),
                )
            ]
            if alerts.channels
            else []
        )
    )


__all__ = [
    "AdoptionStats",
    "Chore",
    "ZombieHook",
    "Housekeeping",
    "adopt_or_fail_tries",
    "adopt_orphans",
    "chores",
    "end_exited_try",
    "end_try_as_zombie",
    "find_zombies",
    "requeue_stuck",
    "requeue_try",
    "zombie_reason",
]
