"""headrace's Celery app: the configuration both ends share, and how a try becomes a message.

The scheduler's :class:`~headrace.executors.celery.CeleryExecutor` publishes
one message per try; ``headrace celery worker``
(:mod:`headrace.executors.celery_worker`) consumes them. The message is a
task named :data:`TASK_NAME` whose one argument is the
:class:`~headrace.supervisor.request.TryRequest` as JSON, whose Celery task id
is the try's ``external_executor_id`` (written in the transaction that queued
it) and whose queue is the task's ``queue`` (the default queue, ``default``,
maps to ``operators.default_queue``).

There is no result backend: the metadata DB is the truth, so the executor
learns a try's end from the task instance's row. Messages are acknowledged late
(``celery.task_acks_late``, after the supervisor ended) with one message
reserved per slot (``celery.worker_prefetch_multiplier``): a worker lost
mid-try gets its message delivered again, and the supervisor's claim decides
whether that delivery runs anything.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Celery

from headrace.config import SPEC, Settings
from headrace.supervisor.request import TryRequest

TASK_NAME = "headrace.run_try"
"""The Celery task every try's message names."""

AUTHORING_DEFAULT_QUEUE = "default"
"""The ``queue`` of a task that names none (``BaseOperator(queue="default")``, Airflow's)."""


REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")
"""Broker URL schemes served by kombu's Redis transport."""


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's transport options: ``celery.broker_transport_options`` (JSON) and ``[celery_broker_transport_options]``.

    ``visibility_timeout`` (Redis, SQS) is the section's when set there to other than its default, else the
    JSON's, else the section's default (86400 s, Airflow's); ``sentinel_kwargs`` the section's when given. On
    Redis, ``socket_timeout`` and ``socket_connect_timeout`` default to ``celery.operation_timeout`` (seconds)
    and ``socket_keepalive`` to true: without them redis-py waits forever on a Redis that accepted the
    connection but never answers, and the scheduler's publish with it. Options given win.
    """
    section, named = "celery", "celery_broker_transport_options"
    options: dict[str, Any] = json.loads(settings.get_str(section, "broker_transport_options"))
    scheme = settings.get_str(section, "broker_url").partition("://")[0].lower()
    if scheme in REDIS_SCHEMES or scheme == "sqs":
        visibility = settings.get_int(named, "visibility_timeout")
        if (
            visibility != SPEC[named]["visibility_timeout"].default(settings.home)
            or "visibility_timeout" not in options
        ):
            options["visibility_timeout"] = visibility
    sentinel = settings.get_str(named, "sentinel_kwargs").strip()
    if sentinel:
        options["sentinel_kwargs"] = json.loads(sentinel)
    if scheme in REDIS_SCHEMES:
        timeout = settings.get_float(section, "operation_timeout")
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "socket_keepalive": True, **options}
    return options


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings (its own lower-case names) from the ``[celery]`` section."""
    section = "celery"
    timeout = settings.get_float(section, "operation_timeout")
    return {
        "broker_url": settings.get_str(section, "broker_url"),
        "broker_transport_options": transport_options(settings),
        "broker_connection_timeout": timeout,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_default_queue": settings.get_str("operators", "default_queue"),
        "task_acks_late": settings.get_bool(section, "task_acks_late"),
        "worker_prefetch_multiplier": settings.get_int(section, "worker_prefetch_multiplier"),
        "worker_concurrency": settings.get_int(section, "worker_concurrency"),
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": timeout / 4,
            "interval_max": timeout / 2,
        },
        "enable_utc": True,
        "timezone": "UTC",
    }


def make_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings`` (not the process's current app; no task registered)."""
    app = Celery("headrace", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def celery_queue(settings: Settings, queue: str) -> str:
    """The Celery queue a try of a task on ``queue`` goes to (``default`` → ``operators.default_queue``)."""
    return settings.get_str("operators", "default_queue") if queue == AUTHORING_DEFAULT_QUEUE else queue


def task_id(request: TryRequest) -> str:
    """The Celery task id of ``request``'s message: its ``external_executor_id``, or, for a request queued
    without one, a name derived from the try (``hr-<ti_id>-<try_number>``)."""
    return request.external_executor_id or f"hr-{request.ti_id}-{request.try_number}"


def send_try(app: Celery, settings: Settings, request: TryRequest) -> None:
    """Publish ``request``'s message. Raises what kombu raises when the broker cannot be reached, or (Redis)
    does not answer, within ``celery.operation_timeout`` per attempt (three attempts, two quick retries)."""
    app.send_task(
        TASK_NAME,
        args=[request.to_json()],
        task_id=task_id(request),
        queue=celery_queue(settings, request.queue),
        retry=True,
    )


__all__ = [
    "AUTHORING_DEFAULT_QUEUE",
    "REDIS_SCHEMES",
    "TASK_NAME",
    "celery_config",
    "celery_queue",
    "make_app",
    "send_try",
    "task_id",
    "transport_options",
]
