"""The scheduler's heartbeat, the database's latency now and the scheduling delay of recent tries.

* Heartbeat: the ``scheduler_job`` that holds the ``"scheduler"`` lease is the
  active scheduler; its ``heartbeat_at`` age is compared with
  ``scheduler.heartbeat_interval``.
* DB latency: measured now, on one connection: ``SAMPLES`` × ``SELECT 1`` (the
  round trip) and ``SAMPLES`` × a count over the ``(state, dag_id)`` index of
  ``task_instance`` (what the scheduler's queries look like); p50 and max in ms.
* Scheduling delay: ``task_instance.queued_at`` → ``task_try.start_date`` of
  the latest try, for tries started in the window (p50 / p95 / max, nearest
  rank, computed in the database). The scheduler queues a try only when a slot
  is free, so this is the time from "queued" to the supervisor recording the
  start — the launch path, not waiting for a slot.
* Optionally the scheduler's own ``/metrics`` on ``127.0.0.1:metrics.scheduler_port``:
  ``headrace_scheduler_loop_duration_seconds`` (skipped when not reachable).
"""

from __future__ import annotations

import statistics
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import and_, func, select, text

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, Lease, SchedulerJob, TaskInstance, TaskTry
from headrace.doctor.findings import Area, Finding, Severity, fmt_seconds, set_setting
from headrace.doctor.sql import epoch_seconds, percentiles
from headrace.supervisor.identity import ProcessIdentity, hostname

SAMPLES = 20
ROUND_TRIP_WARN_MS = 5.0
"""p50 of ``SELECT 1`` above this (ms) is a warning: the database is far away or overloaded."""
INDEXED_WARN_MS = 50.0
"""p50 of the indexed query above this (ms) is a warning."""
DELAY_WARN_SECONDS = 5.0
"""p95 scheduling delay above this (s) is a warning."""
LOOP_METRIC = "headrace_scheduler_loop_duration_seconds"
JOB_COLUMNS = (
    SchedulerJob.id,
    SchedulerJob.hostname,
    SchedulerJob.pid,
    SchedulerJob.process_start_time,
    SchedulerJob.heartbeat_at,
    SchedulerJob.ended_at,
)


def _timed(run: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def measure_db_latency(db: Database, samples: int = SAMPLES) -> dict[str, float]:
    """Milliseconds: ``select1_p50_ms``, ``select1_max_ms``, ``indexed_p50_ms``, ``indexed_max_ms`` (one warm connection)."""
    indexed = (
        select(func.count())
        .select_from(TaskInstance)
        .where(TaskInstance.state == "scheduled", TaskInstance.dag_id >= "")
    )
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar()  # warm: connect, first statement
        one = _timed(lambda: conn.execute(text("SELECT 1")).scalar(), samples)
        conn.execute(indexed).scalar()
        idx = _timed(lambda: conn.execute(indexed).scalar(), samples)
        conn.rollback()
    return {
        "select1_p50_ms": round(statistics.median(one), 3),
        "select1_max_ms": round(max(one), 3),
        "indexed_p50_ms": round(statistics.median(idx), 3),
        "indexed_max_ms": round(max(idx), 3),
        "samples": samples,
    }


def measure_delay(db: Database, now: datetime, hours: float) -> dict[int, float]:
    """Scheduling delay (s) of tries started in the last ``hours`` h: ``{50: p50, 95: p95, 100: max}`` ({} if none)."""
    since = now - timedelta(hours=hours)
    sqlite = db.is_sqlite
    delay = epoch_seconds(TaskTry.start_date, sqlite=sqlite) - epoch_seconds(TaskInstance.queued_at, sqlite=sqlite)
    values = (
        select(delay.label("v"))
        .select_from(TaskTry)
        .join(
            TaskInstance,
            and_(TaskInstance.id == TaskTry.task_instance_id, TaskInstance.try_number == TaskTry.try_number),
        )
        .where(
            TaskTry.start_date >= since,
            TaskTry.start_date < now,
            TaskInstance.queued_at.is_not(None),
            TaskInstance.queued_at <= TaskTry.start_date,
        )
    )
    with db.read_session() as session:
        return percentiles(session, values, [50, 95, 100]).get((), {})


def scrape_loop_duration(port: int, timeout: float = 0.5) -> dict[str, float] | None:
    """Mean and count of ``headrace_scheduler_loop_duration_seconds`` from ``127.0.0.1:port/metrics``; None if absent."""
    if port <= 0:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:  # noqa: S310
            body = resp.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    total = count = None
    last = None
    try:
        for family in text_string_to_metric_families(body):
            if family.name != LOOP_METRIC:
                continue
            for sample in family.samples:
                if sample.name == LOOP_METRIC + "_sum":
                    total = sample.value
                elif sample.name == LOOP_METRIC + "_count":
                    count = sample.value
                elif sample.name == LOOP_METRIC:
                    last = sample.value
    except ValueError:
        return None
    if total is not None and count:
        return {"loop_duration_mean_seconds": total / count, "loops": count}
    if last is not None:
        return {"loop_duration_seconds": last}
    return None


def scheduler_findings(settings: Settings, db: Database, now: datetime, hours: float) -> list[Finding]:
    """Area "scheduler and database": heartbeat, DB latency, scheduling delay, loop duration."""
    findings: list[Finding] = []
    interval = settings.get_float("scheduler", "heartbeat_interval")
    here = hostname()
    with db.read_session() as session:
        lease = session.execute(select(Lease.holder_job_id, Lease.expires_at).where(Lease.name == "scheduler")).first()
        holder = (
            session.execute(select(*JOB_COLUMNS).where(SchedulerJob.id == lease.holder_job_id)).first()
            if lease is not None
            else None
        )
        open_jobs = session.execute(select(*JOB_COLUMNS).where(SchedulerJob.ended_at.is_(None))).all()
        waiting_runs = session.scalar(
            select(func.count()).select_from(DagRun).where(DagRun.state.in_(("queued", "running")))
        )
    if holder is not None and holder.ended_at is None and lease is not None and lease.expires_at > now:
        age = max(0.0, (now - holder.heartbeat_at).total_seconds())
        figures = {
            "scheduler_job_id": holder.id,
            "hostname": holder.hostname,
            "pid": holder.pid,
            "heartbeat_age_seconds": round(age, 3),
            "heartbeat_interval_seconds": interval,
        }
        if age > 3 * interval:
            findings.append(
                Finding(
                    Area.SCHEDULER,
                    Severity.WARNING,
                    f"scheduler job {holder.id} last heartbeat {age:.1f} s ago (heartbeat_interval {interval:g} s): "
                    "its loop is stuck or very slow",
                    figures,
                    f"check its log and CPU; the DB latency below; `py-spy dump --pid {holder.pid}` shows where it is",
                )
            )
        else:
            findings.append(
                Finding(
                    Area.SCHEDULER,
                    Severity.OK,
                    f"active scheduler: job {holder.id} (pid {holder.pid} on {holder.hostname}), heartbeat {age:.1f} s ago",
                    figures,
                )
            )
    else:
        figures2 = {
            "dag_runs_waiting": int(waiting_runs or 0),
            "lease_expired_seconds_ago": round((now - lease.expires_at).total_seconds(), 3) if lease else None,
        }
        severity = Severity.WARNING if waiting_runs else Severity.INFO
        findings.append(
            Finding(
                Area.SCHEDULER,
                severity,
                f"no active scheduler; {waiting_runs or 0} DAG run{'s' if waiting_runs != 1 else ''} queued or running",
                figures2,
                "start one: `headrace scheduler` (or `headrace standalone`)",
            )
        )
    for job in open_jobs:
        who = ProcessIdentity(job.hostname, job.pid, job.process_start_time)
        if job.hostname == here and not who.is_alive():
            findings.append(
                Finding(
                    Area.SCHEDULER,
                    Severity.INFO,
                    f"scheduler job {job.id} (pid {job.pid}) never ended but its process is gone (killed?)",
                    {"scheduler_job_id": job.id, "pid": job.pid},
                    "nothing to do: a new scheduler takes its lease over and re-adopts or fails its tries",
                )
            )

    lat = measure_db_latency(db)
    backend = "SQLite" if db.is_sqlite else "PostgreSQL"
    sev = Severity.WARNING if lat["select1_p50_ms"] > ROUND_TRIP_WARN_MS else Severity.OK
    findings.append(
        Finding(
            Area.SCHEDULER,
            sev,
            f"{backend} round trip (SELECT 1 ×{lat['samples']:.0f}): p50 {lat['select1_p50_ms']:.2f} ms, "
            f"max {lat['select1_max_ms']:.2f} ms",
            {**lat, "backend": backend},
            ""
            if sev is Severity.OK
            else "the database is far or busy: put it next to the scheduler, check its load and connection limits",
        )
    )
    sev = Severity.WARNING if lat["indexed_p50_ms"] > INDEXED_WARN_MS else Severity.OK
    findings.append(
        Finding(
            Area.SCHEDULER,
            sev,
            f"indexed task_instance query ×{lat['samples']:.0f}: p50 {lat['indexed_p50_ms']:.2f} ms, "
            f"max {lat['indexed_max_ms']:.2f} ms",
            {**lat, "backend": backend},
            ""
            if sev is Severity.OK
            else "the database is slow on indexed reads: VACUUM/ANALYZE (PostgreSQL), check disk and bloat",
        )
    )

    delay = measure_delay(db, now, hours)
    if delay:
        figures3 = {
            "p50_seconds": round(delay[50], 4),
            "p95_seconds": round(delay[95], 4),
            "max_seconds": round(delay[100], 4),
            "hours": hours,
        }
        slow = delay[95] > DELAY_WARN_SECONDS
        findings.append(
            Finding(
                Area.SCHEDULER,
                Severity.WARNING if slow else Severity.OK,
                f"scheduling delay (queued → try started) in {hours:g} h: p50 {fmt_seconds(delay[50])}, "
                f"p95 {fmt_seconds(delay[95])}, max {fmt_seconds(delay[100])}",
                figures3,
                "tries take long to start once queued: check DB latency above, the scheduler host's CPU and memory, "
                "and slow DAG files below (" + set_setting("executor", "preload_dag_files", "true") + ")"
                if slow
                else "",
            )
        )
    else:
        findings.append(
            Finding(
                Area.SCHEDULER,
                Severity.INFO,
                f"no try started in the last {hours:g} h: no scheduling delay to measure",
                {"hours": hours},
            )
        )

    loop = scrape_loop_duration(settings.get_int("metrics", "scheduler_port"))
    if loop is not None:
        value = loop.get("loop_duration_mean_seconds", loop.get("loop_duration_seconds", 0.0))
        findings.append(
            Finding(
                Area.SCHEDULER, Severity.OK, f"scheduler loop duration (from its /metrics): {fmt_seconds(value)}", loop
            )
        )
    return findings
