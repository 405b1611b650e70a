"""``GET /health``: is the metadata database reachable, and how old is the scheduler's heartbeat. No login."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select, text

from headrace.api.auth import get_db
from headrace.db.models import SchedulerJob

router = APIRouter(tags=["health"])


class ComponentHealth(BaseModel):
    """One component: ``healthy`` or ``unhealthy``, and the measurement behind it."""

    status: str
    latency_seconds: float | None = None
    """Metadata DB: seconds one ``SELECT 1`` took."""
    latest_heartbeat: datetime | None = None
    """Scheduler: newest heartbeat of a running scheduler job."""
    heartbeat_age_seconds: float | None = None
    error: str | None = None


class Health(BaseModel):
    """``/health``: HTTP 200 when everything is healthy, 503 otherwise."""

    status: str
    metadatabase: ComponentHealth
    scheduler: ComponentHealth


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "unhealthy"}})
def health(request: Request) -> JSONResponse:
    """DB reachable (with latency) and scheduler heartbeat age; a heartbeat older than
    ``scheduler.scheduler_health_check_threshold`` seconds counts as unhealthy."""
    settings = request.app.state.settings
    now = datetime.now(UTC)
    threshold = settings.get_float("scheduler", "scheduler_health_check_threshold")
    try:
        started = time.perf_counter()
        with get_db(request).read_session() as session:
            session.execute(text("SELECT 1"))
            latency = time.perf_counter() - started
            newest = session.scalar(select(func.max(SchedulerJob.heartbeat_at)).where(SchedulerJob.ended_at.is_(None)))
        dbh = ComponentHealth(status="healthy", latency_seconds=round(latency, 6))
        if newest is None:
            sched = ComponentHealth(status="unhealthy", error="no scheduler is running")
        else:
            age = (now - newest).total_seconds()
            sched = ComponentHealth(
                status="healthy" if age <= threshold else "unhealthy",
                latest_heartbeat=newest,
                heartbeat_age_seconds=round(age, 3),
            )
    except Exception as exc:  # noqa: BLE001 — any driver error means the DB is not usable
        dbh = ComponentHealth(status="unhealthy", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        sched = ComponentHealth(status="unhealthy", error="unknown: the metadata database is unreachable")
    ok = dbh.status == "healthy" and sched.status == "healthy"
    body = Health(status="healthy" if ok else "unhealthy", metadatabase=dbh, scheduler=sched)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
