"""Routers of the API. ``API_ROUTERS`` are mounted under ``/api/v1``; ``ROOT_ROUTERS`` at ``/``.

The web UI's routers are ``headrace.ui.routes.ROUTERS``; ``headrace.webapp`` mounts both.
"""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.routes import (
    assets,
    auth,
    connections,
    dag_runs,
    dag_warnings,
    dags,
    health,
    import_errors,
    logs,
    metrics,
    pools,
    task_instances,
    tries,
    variables,
    xcoms,
)

API_ROUTERS: list[APIRouter] = [auth.router]
API_ROUTERS += [
    dags.router,
    dag_runs.router,
    task_instances.router,
    tries.router,
    logs.router,
    xcoms.router,
    pools.router,
    variables.router,
    connections.router,
    import_errors.router,
    dag_warnings.router,
    assets.router,
]  # REST resources
ROOT_ROUTERS: list[APIRouter] = [health.router]
ROOT_ROUTERS += [metrics.router]  # Prometheus /metrics
