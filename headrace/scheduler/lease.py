"""The scheduler's job row, and on SQLite its lease: which schedulers may work on one metadata DB.

Every scheduler process registers a ``scheduler_job`` row (host, pid, process
start time, heartbeat). The row's id is stamped on the tries it queues
(``task_instance.queued_by_job_id``), so a survivor knows whose queued tries
were lost with a dead scheduler (:func:`job_alive`,
:func:`~headrace.scheduler.housekeeping.adopt_orphans`).

**PostgreSQL: every scheduler is active** (:func:`several_schedulers`). No
lease is taken; the schedulers share the work row by row: DAG runs, DAGs due
and task instances are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, every
state change is a compare-and-set, and the concurrency limits are counted and
spent under a transaction-scoped advisory lock
(:func:`hold_critical_section`), so they hold across all schedulers together.
:class:`SharedRegistration` stands in for the lease (always held).

**SQLite: one active scheduler.** The ``lease`` row named ``"scheduler"``
says which job is active until ``expires_at``. A new scheduler

* takes a free or expired lease at once;
* takes it at once from a holder on the same host whose process is dead
  (pid + start time, see :class:`~headrace.supervisor.identity.ProcessIdentity`),
  which is what a SIGKILLed scheduler leaves behind;
* otherwise logs that another scheduler is active and waits for the lease as
  a hot standby (the holder renews it every ``lease_ttl / 3``); it does no
  work meanwhile.

Every change is a compare-and-set on ``(holder_job_id, expires_at)``, so two
schedulers starting together cannot both win.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import psutil
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from headrace.db.engine import Database
from headrace.db.models import Lease, SchedulerJob
from headrace.db.outage import is_outage, one_line, retry_through_outage
from headrace.scheduler.clock import Clock
from headrace.supervisor.identity import ProcessIdentity, hostname

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


def register_job(db: Database, now: datetime) -> int:
    """Insert this process's ``scheduler_job`` row; return its id."""
    pid = os.getpid()
    with db.session() as session:
        job = SchedulerJob(
            hostname=hostname(),
            pid=pid,
            process_start_time=psutil.Process(pid).create_time(),
            started_at=now,
            heartbeat_at=now,
        )
        session.add(job)
        session.flush()
        return int(job.id)


def heartbeat(db: Database, job_id: int, now: datetime) -> int:
    """Stamp ``heartbeat_at`` of job ``job_id``; return 1."""
    with db.session() as session:
        session.execute(update(SchedulerJob).where(SchedulerJob.id == job_id).values(heartbeat_at=now))
    return 1


def end_job(db: Database, job_id: int, now: datetime) -> None:
    """Record that job ``job_id`` ended cleanly."""
    with db.session() as session:
        session.execute(update(SchedulerJob).where(SchedulerJob.id == job_id).values(ended_at=now, heartbeat_at=now))


def several_schedulers(db: Database) -> bool:
    """True where several schedulers may be active at once: PostgreSQL (SQLite: one, by the lease)."""
    return db.engine.dialect.name == "postgresql"


def job_alive(job: SchedulerJob | None, now: datetime, threshold: float) -> bool:
    """Whether scheduler job ``job`` may still be running: not ended, and — on this host — its process lives
    (pid + start time), or — on another host — its heartbeat is younger than ``threshold`` seconds
    (``scheduler.scheduler_health_check_threshold``). A missing row (None) is dead."""
    if job is None or job.ended_at is not None:
        return False
    who = ProcessIdentity(host=job.hostname, pid=job.pid, start_time=job.process_start_time)
    if who.is_local():
        return who.is_alive()
    return job.heartbeat_at >= now - timedelta(seconds=threshold)


class SchedulerLease:
    """The lease ``"scheduler"`` as seen by job ``job_id``."""

    def __init__(self, db: Database, job_id: int, ttl: float) -> None:
        self.db = db
        self.job_id = job_id
        self.ttl = timedelta(seconds=ttl)
        self.held = False

    def acquire(self, now: datetime) -> bool:
        """Take or renew the lease if it is free, expired, ours or held by a dead process; return whether we hold it."""
        expires = now + self.ttl
        with self.db.session() as session:
            lease = session.get(Lease, LEASE_NAME)
            if lease is None:
                try:
                    with session.begin_nested():
                        session.add(Lease(name=LEASE_NAME, holder_job_id=self.job_id, expires_at=expires))
                    self.held = True
                except IntegrityError:
                    self.held = False
                return self.held
            holder, old_expiry = lease.holder_job_id, lease.expires_at
            if holder != self.job_id and old_expiry > now and self._holder_alive(session.get(SchedulerJob, holder)):
                self.held = False
                return False
            result = session.execute(
                update(Lease)
                .where(Lease.name == LEASE_NAME, Lease.holder_job_id == holder, Lease.expires_at == old_expiry)
                .values(holder_job_id=self.job_id, expires_at=expires)
                .execution_options(synchronize_session=False)
            )
            self.held = bool(result.rowcount == 1)  # type: ignore[attr-defined]
            if self.held and holder != self.job_id:
                log.info("took the scheduler lease from job %d (expired or its process is dead)", holder)
            return self.held

    @staticmethod
    def _holder_alive(job: SchedulerJob | None) -> bool:
        """False if the holder's job row is gone, it ended, or it ran on this host and its process is dead."""
        if job is None or job.ended_at is not None:
            return False
        who = ProcessIdentity(host=job.hostname, pid=job.pid, start_time=job.process_start_time)
        return who.is_alive() if who.is_local() else True

    def renew(self, now: datetime) -> int:
        """Extend the lease we hold; return 1. Sets ``held = False`` if another job took it."""
        with self.db.session() as session:
            result = session.execute(
                update(Lease)
                .where(Lease.name == LEASE_NAME, Lease.holder_job_id == self.job_id)
                .values(expires_at=now + self.ttl)
                .execution_options(synchronize_session=False)
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            log.error("lost the scheduler lease to another scheduler")
            self.held = False
        return 1

    def release(self) -> None:
        """Give the lease up (a clean stop), so the next scheduler starts at once."""
        with self.db.session() as session:
            session.execute(delete(Lease).where(Lease.name == LEASE_NAME, Lease.holder_job_id == self.job_id))
        self.held = False


class SharedRegistration(SchedulerLease):
    """Stands in for the lease where every scheduler is active (PostgreSQL): always held; taking it again after
    an outage is a heartbeat (a write that tells the database is back); renewing and releasing do nothing."""

    def __init__(self, db: Database, job_id: int, ttl: float) -> None:
        super().__init__(db, job_id, ttl)
        self.held = True

    def acquire(self, now: datetime) -> bool:
        """Stamp this job's heartbeat; return True."""
        heartbeat(self.db, self.job_id, now)
        self.held = True
        return True

    def renew(self, now: datetime) -> int:
        """Nothing to renew; return 0."""
        return 0

    def release(self) -> None:
        """Nothing to release."""


@contextmanager
def leadership(
    db: Database,
    clock: Clock,
    stop: threading.Event,
    wake_fd: int,
    *,
    ttl: float,
    outage_tolerance: float,
    exclusive: bool = True,
) -> Iterator[SchedulerLease]:
    """Register a scheduler job, then wait for the lease; yield it, and on the way out release it and end the job.

    ``exclusive=False`` (PostgreSQL, :func:`several_schedulers`): take no lease; yield a
    :class:`SharedRegistration` (always held) at once.

    The yielded lease is ``held`` unless ``stop`` was set while waiting (then
    the loop must not run). Waiting retries every ``min(5, ttl / 3)`` s
    (``ttl`` in seconds) while another live scheduler holds it, and every 2 s
    while the database is unreachable; ``clock.wait`` on ``wake_fd`` ends a
    wait early (a stop request). Registering rides out an outage of up to
    ``outage_tolerance`` s, else raises. At the end, an unreachable database is
    logged, not raised: the lease expires by itself.
    """
    job_id = 0
    held: SchedulerLease | None = None
    try:
        now = clock.now()
        job_id = retry_through_outage(
            lambda: register_job(db, now), tolerance=outage_tolerance, what="registering the scheduler", log=log
        )
        if exclusive:
            held = SchedulerLease(db, job_id, ttl)
            _wait_for_lease(held, clock, stop, wake_fd)
        else:
            held = SharedRegistration(db, job_id, ttl)
            log.info("scheduler job %d is active beside any other scheduler on this database (PostgreSQL)", job_id)
        yield held
    finally:
        try:
            if held is not None and held.held:
                held.release()
            if job_id:
                end_job(db, job_id, clock.now())
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "could not release the lease or end scheduler job %d (the database is unreachable: "
                "%s); the lease expires by itself",
                job_id,
                one_line(exc),
            )


def _wait_for_lease(held: SchedulerLease, clock: Clock, stop: threading.Event, wake_fd: int) -> None:
    """Try to take the lease until it is taken or ``stop`` is set."""
    told = False
    while not stop.is_set():
        try:
            acquired = held.acquire(clock.now())
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("cannot reach the database to take the lease (%s); retrying", one_line(exc))
            clock.wait([wake_fd], 2.0)
            continue
        if acquired:
            log.info("scheduler job %d holds the lease", held.job_id)
            return
        if not told:
            told = True
            log.warning(
                "another scheduler is active on this SQLite database (it holds the scheduler lease); only one "
                "scheduler works on SQLite — this one waits as a standby and takes over when that one stops "
                "(several active schedulers need PostgreSQL)"
            )
        clock.wait([wake_fd], min(5.0, held.ttl.total_seconds() / 3))


__all__ = [
    "LEASE_NAME",
    "SchedulerLease",
    "SharedRegistration",
    "end_job",
    "heartbeat",
    "job_alive",
    "leadership",
    "register_job",
    "several_schedulers",
]
