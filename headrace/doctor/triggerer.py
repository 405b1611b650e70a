"""The triggerer's health: is one alive for the triggers waiting, how late its event loop runs, and which
trigger last blocked it (from the ``triggerer_job`` rows each triggerer heartbeats; see
:mod:`headrace.triggerer.runner`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, Trigger, TriggererJob
from headrace.doctor.findings import Area, Finding, Severity
from headrace.states import TaskInstanceState


def triggerer_findings(settings: Settings, db: Database, now: datetime, hours: float) -> list[Finding]:
    """Findings on deferrals and triggerers: waiting triggers with no live triggerer (warning), a live
    triggerer's event-loop lag p99 over ``triggerer.block_threshold`` (warning), a trigger that blocked the
    loop within the last ``hours`` (warning, naming it), else one ok line with the figures."""
    heartbeat = settings.get_float("triggerer", "job_heartbeat_sec")
    threshold = settings.get_float("triggerer", "block_threshold")
    with db.read_session() as session:
        triggers = int(session.scalar(select(func.count()).select_from(Trigger)) or 0)
        deferred = int(
            session.scalar(
                select(func.count())
                .select_from(TaskInstance)
                .where(TaskInstance.state == TaskInstanceState.DEFERRED.value)
            )
            or 0
        )
        live = list(
            session.scalars(
                select(TriggererJob).where(
                    TriggererJob.ended_at.is_(None),
                    TriggererJob.heartbeat_at >= now - timedelta(seconds=2 * heartbeat),
                )
            )
        )
        blocked = list(
            session.scalars(
                select(TriggererJob)
                .where(TriggererJob.blocked_at >= now - timedelta(hours=hours))
                .order_by(TriggererJob.blocked_at.desc())
                .limit(5)
            )
        )
        session.expunge_all()  # read below, after the session ends
    area = Area.TRIGGERER
    findings: list[Finding] = []
    if triggers and not live:
        findings.append(
            Finding(
                area,
                Severity.WARNING,
                f"{triggers} trigger(s) wait ({deferred} deferred task instance(s)) but no triggerer is alive",
                {"triggers": triggers, "deferred": deferred, "live_triggerers": 0},
                "start one: `headrace triggerer` (headrace standalone starts it while triggers exist)",
            )
        )
    for job in live:
        if job.loop_lag_p99 is not None and job.loop_lag_p99 > threshold:
            findings.append(
                Finding(
                    area,
                    Severity.WARNING,
                    f"triggerer {job.id} on {job.hostname}: event loop lag p99 {job.loop_lag_p99:.3f} s "
                    f"(max {job.loop_lag_max or 0:.3f} s) over triggerer.block_threshold {threshold:g} s",
                    {"triggerer_id": job.id, "lag_p99_seconds": job.loop_lag_p99, "lag_max_seconds": job.loop_lag_max},
                    "a trigger blocks the loop or the triggerer is over capacity: see its log, lower "
                    "triggerer.capacity (HEADRACE__TRIGGERER__CAPACITY) or run another triggerer",
                )
            )
    for job in blocked:
        findings.append(
            Finding(
                area,
                Severity.WARNING,
                f"a trigger blocked triggerer {job.id}'s event loop for {job.blocked_seconds or 0:.2f} s at "
                f"{job.blocked_at.isoformat() if job.blocked_at else '?'}: {job.blocked_detail}",
                {
                    "triggerer_id": job.id,
                    "blocked_seconds": job.blocked_seconds,
                    "trigger_id": job.blocked_trigger_id,
                },
                "a trigger must await (asyncio.sleep, asyncio.to_thread), never block: fix the trigger named",
            )
        )
    if not findings:
        lags = [j.loop_lag_p99 for j in live if j.loop_lag_p99 is not None]
        findings.append(
            Finding(
                area,
                Severity.OK,
                f"{len(live)} live triggerer(s), {triggers} trigger(s), {deferred} deferred task instance(s)"
                + (f"; event loop lag p99 {max(lags):.3f} s" if lags else ""),
                {
                    "live_triggerers": len(live),
                    "triggers": triggers,
                    "deferred": deferred,
                    "lag_p99_seconds": max(lags) if lags else None,
                },
            )
        )
    return findings
