"""The scheduler lease: one active scheduler; taken over when the holder expires or its process died."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import psutil
from sqlalchemy import update

from headrace.db.engine import Database
from headrace.db.models import Lease, SchedulerJob
from headrace.scheduler.lease import SchedulerLease, end_job, register_job

from .conftest import NOW


def test_second_scheduler_waits_while_the_holder_lives(db: Database) -> None:
    a = SchedulerLease(db, register_job(db, NOW), ttl=30)
    b = SchedulerLease(db, register_job(db, NOW), ttl=30)
    assert a.acquire(NOW)
    assert not b.acquire(NOW + timedelta(seconds=29))
    assert a.acquire(NOW + timedelta(seconds=10))  # renewal by acquire is fine
    a.renew(NOW + timedelta(seconds=20))
    assert not b.acquire(NOW + timedelta(seconds=49))
    assert b.acquire(NOW + timedelta(seconds=51))  # expired: a stopped renewing
    a.renew(NOW + timedelta(seconds=52))
    assert not a.held


def test_lease_taken_at_once_when_holder_process_is_dead(db: Database) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    start = psutil.Process(proc.pid).create_time()
    proc.kill()
    proc.wait()
    dead_job = register_job(db, NOW)
    with db.session() as session:
        session.execute(
            update(SchedulerJob).where(SchedulerJob.id == dead_job).values(pid=proc.pid, process_start_time=start)
        )
    assert SchedulerLease(db, dead_job, ttl=30).acquire(NOW)
    new = SchedulerLease(db, register_job(db, NOW), ttl=30)
    assert new.acquire(NOW + timedelta(seconds=1))
    with db.session() as session:
        lease = session.get(Lease, "scheduler")
        assert lease is not None and lease.holder_job_id == new.job_id


def test_released_or_ended_holder_frees_the_lease(db: Database) -> None:
    a = SchedulerLease(db, register_job(db, NOW), ttl=30)
    b = SchedulerLease(db, register_job(db, NOW), ttl=30)
    assert a.acquire(NOW)
    a.release()
    assert b.acquire(NOW) and not a.acquire(NOW)
    end_job(db, b.job_id, NOW)  # b said it ended but its lease row stayed behind
    assert a.acquire(NOW)
