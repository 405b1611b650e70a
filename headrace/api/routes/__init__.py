"""Routers of the application. ``API_ROUTERS`` are mounted under ``/api/v1``; ``ROOT_ROUTERS`` at ``/``."""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.routes import auth, health
from headrace.ui import data_extra, pages_extra
from headrace.ui import data as ui_data
from headrace.ui import views as ui_views

API_ROUTERS: list[APIRouter] = [auth.router]
ROOT_ROUTERS: list[APIRouter] = [health.router]
ROOT_ROUTERS += [data_extra.router, pages_extra.router]  # UI: Gantt, pools, resources pages and their data
ROOT_ROUTERS += [ui_views.router, ui_data.router]
