"""Routers of the application. ``API_ROUTERS`` are mounted under ``/api/v1``; ``ROOT_ROUTERS`` at ``/``."""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.routes import auth, health

API_ROUTERS: list[APIRouter] = [auth.router]
ROOT_ROUTERS: list[APIRouter] = [health.router]
