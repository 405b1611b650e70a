"""Routers of the application. ``API_ROUTERS`` are mounted under ``/api/v1``; ``ROOT_ROUTERS`` at ``/``."""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.routes import auth, health, metrics
from headrace.api.routes import (
    connections, dag_runs, dags, import_errors, logs, pools, task_instances, tries, variables, xcoms,
)
from headrace.ui import data_extra, pages_extra
from headrace.ui import data as ui_data
from headrace.ui import views as ui_views

API_ROUTERS: list[APIRouter] = [auth.router]
API_ROUTERS += [dags.router, dag_runs.router, task_instances.router, tries.router, logs.router, xcoms.router,
                pools.router, variables.router, connections.router, import_errors.router]  # REST resources
ROOT_ROUTERS: list[APIRouter] = [health.router]
ROOT_ROUTERS += [data_extra.router, pages_extra.router]  # UI: Gantt, pools, resources pages and their data
ROOT_ROUTERS += [ui_views.router, ui_data.router]
ROOT_ROUTERS += [metrics.router]  # Prometheus /metrics
