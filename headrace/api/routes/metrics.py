"""``GET /metrics``: Prometheus exposition (text format 0.0.4). Needs a login (role viewer).

It shows the DB collector (:class:`headrace.observability.metrics.DbCollector`:
task instances and DAG runs by state, waiting tries, executor slots,
scheduler heartbeat age, import errors, deadline misses), the API server's own
counters (:class:`headrace.observability.metrics.ApiMetrics`: failed logins) and — when the app
runs in the scheduler's process (``headrace standalone``) — the scheduler's
own registry (``app.state.metrics_registry``, see ``create_app``).

Prometheus scrapes it with an API token (``headrace users token NAME``)::

    scrape_configs:
      - job_name: headrace
        metrics_path: /metrics
        authorization:
          credentials: <API token>
        static_configs:
          - targets: ["headrace.example.com:8080"]
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from headrace.api.auth import get_db, require
from headrace.observability.metrics import db_registry

router = APIRouter(tags=["metrics"])


def _db_registry(request: Request) -> CollectorRegistry:
    """The app's DB-collector registry, built on first use."""
    registry = getattr(request.app.state, "db_metrics_registry", None)
    if registry is None:
        settings = request.app.state.settings
        registry = db_registry(get_db(request), int(settings.parallelism))
        request.app.state.db_metrics_registry = registry
    return registry


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require("viewer"))],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics of the metadata DB, plus the scheduler's when it runs in this process."""
    body = generate_latest(_db_registry(request)) + generate_latest(request.app.state.api_metrics.registry)
    scheduler_registry = getattr(request.app.state, "metrics_registry", None)
    if scheduler_registry is not None:
        body += generate_latest(scheduler_registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
