"""Executors: hand tries to supervisors, one at a time, through a fork server, or through Celery.

``make_executor(settings)`` builds the executor ``core.executor`` names; the
interface is in :mod:`headrace.executors.base`.
"""

from __future__ import annotations

from headrace.config import Settings
from headrace.exceptions import ConfigError
from headrace.executors.base import Executor, ExecutorEvent, TryRequest
from headrace.executors.local import LocalExecutor
from headrace.executors.sequential import SequentialExecutor


def make_executor(settings: Settings) -> Executor:
    """The executor named by ``core.executor`` (``sequential``, ``local`` or ``celery``). Raises ``ConfigError``."""
    name = settings.executor
    if name == "sequential":
        return SequentialExecutor(settings)
    if name == "local":
        return LocalExecutor(settings)
    if name == "celery":
        # Imported on demand: Celery and kombu cost the local executor's users start-up time for nothing.
        from headrace.executors.celery import CeleryExecutor

        return CeleryExecutor(settings)
    raise ConfigError(
        f"core.executor: unknown executor {name!r}; known: sequential, local, celery", key="core.executor"
    )


__all__ = ["Executor", "ExecutorEvent", "LocalExecutor", "SequentialExecutor", "TryRequest", "make_executor"]
