"""Shared type aliases used across headrace.

These name the shapes that pass between authoring, the runtime and the
scheduler so that signatures read the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeAlias

Context: TypeAlias = dict[str, Any]
"""The template/execution context of one try (see ``authoring.context.build_context``)."""

TaskCallable: TypeAlias = Callable[..., Any]
"""A user function run by a PythonOperator or an ``@task``."""

Callback: TypeAlias = Callable[[Context], Any]
"""``on_success_callback`` / ``on_failure_callback`` / ``on_retry_callback``: called with the context."""

RunId: TypeAlias = str
"""A DAG run's ``run_id`` (e.g. ``scheduled__2024-01-01T00:00:00+00:00``)."""

TryKey: TypeAlias = tuple[str, str, str, int]
"""``(dag_id, run_id, task_id, try_number)``: names one try."""

ScheduleArg: TypeAlias = "str | timedelta | None"
"""What ``DAG(schedule=...)`` accepts: a cron string, a preset, a timedelta or None."""

JSONValue: TypeAlias = Any
"""A value made only of dict/list/str/int/float/bool/None."""

__all__ = ["Callback", "Context", "JSONValue", "RunId", "ScheduleArg", "TaskCallable", "TryKey"]
