"""The web UI's routers, one pair per page: the page (``router``) and, where it has one, its JSON (``data_router``).

``headrace.webapp`` mounts them at ``/`` beside the REST API.
"""

from __future__ import annotations

from fastapi import APIRouter

from headrace.ui import (
    assets,
    code,
    connections,
    dags,
    favicon,
    gantt,
    graph,
    grid,
    login,
    pools,
    resources,
    task_instance,
    trigger,
    variables,
)

ROUTERS: list[APIRouter] = [login.router, favicon.router]
ROUTERS += [
    dags.router,
    grid.router,
    graph.router,
    task_instance.router,
    trigger.router,
    gantt.router,
    resources.router,
    pools.router,
    assets.router,
    code.router,
    variables.router,
    connections.router,
]  # pages
ROUTERS += [
    dags.data_router,
    grid.data_router,
    graph.data_router,
    task_instance.data_router,
    gantt.data_router,
    resources.data_router,
]  # their data under /ui/data

__all__ = ["ROUTERS"]
