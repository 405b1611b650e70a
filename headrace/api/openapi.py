"""Typed pieces of the OpenAPI description shared by the routes."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]
"""FastAPI's ``responses=`` argument: status code → OpenAPI response object."""


def not_found(description: str) -> Responses:
    """The documented 404 of a route, e.g. ``not_found("no such pool")``."""
    return {404: {"description": description}}
