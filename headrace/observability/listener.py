"""Lifecycle hooks: one ``Listener`` interface the scheduler emits events to (STYLE.md item 11).

Metrics (:mod:`~headrace.observability.metrics`), StatsD and notifications
(:mod:`~headrace.observability.notifications`) are listeners. The scheduler
calls :meth:`Listeners.emit` at the place each event happens; ``emit`` calls
the method of the same name on every listener and logs — never raises — a
listener's exception, so a broken listener cannot stop the scheduler.

Events run in the scheduler's loop thread: a listener must be quick (update
a counter, insert one row); anything slow (sending email) belongs in a
thread of its own (see :mod:`~headrace.observability.delivery`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TryInfo:
    """One try that ended (from its ``task_try`` row and its task instance)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    state: str
    """The state the try left its task instance in: ``success``, ``failed``, ``up_for_retry``, ``skipped``."""
    end_reason: str | None
    """Why it ended (``success``, ``exception``, ``memory_limit_exceeded``, ``zombie``, …)."""
    queued_at: datetime | None
    """When the try was queued (None if the task instance has moved on to a later try)."""
    start_date: datetime | None
    end_date: datetime | None
    peak_rss_bytes: int | None
    """Peak resident memory of the task's process tree, bytes."""
    cpu_seconds: float | None
    error: str | None = None
    """One line: the exception or the reason the supervisor gave."""
    map_index: int = -1
    """The task instance's map index (``-1`` for a task that is not mapped)."""

    @property
    def duration_seconds(self) -> float | None:
        """``end_date - start_date`` in seconds, if both are known."""
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).total_seconds()

    @property
    def scheduling_delay_seconds(self) -> float | None:
        """Seconds from queued to started (the scheduling delay), if both are known."""
        if self.queued_at is None or self.start_date is None:
            return None
        return max(0.0, (self.start_date - self.queued_at).total_seconds())


@dataclass(frozen=True)
class RunInfo:
    """A DAG run that ended."""

    dag_id: str
    run_id: str
    state: str
    """``success`` or ``failed``."""
    start_date: datetime | None
    end_date: datetime | None
    logical_date: datetime | None = None


@dataclass(frozen=True)
class DeadlineMissInfo:
    """A DAG run (``task_id`` None) or task instance that missed its deadline (reported once)."""

    dag_id: str
    run_id: str
    task_id: str | None
    deadline: datetime
    detected_at: datetime
    finished: bool
    """True if it had already finished (late) when the miss was found."""


class Listener:
    """Base class with one no-op method per event; override the ones you need."""

    def on_loop(self, duration_seconds: float, now: datetime) -> None:
        """A scheduler loop ran its steps in ``duration_seconds`` (wall time, without the wait)."""

    def on_dag_file_parsed(self, fileloc: str, seconds: float, ok: bool) -> None:
        """A DAG file was parsed in ``seconds``; ``ok`` False if it ended in an import error."""

    def on_try_queued(self, dag_id: str, task_id: str, run_id: str, try_number: int) -> None:
        """A try was queued (``scheduled → queued``) and handed to the executor."""

    def on_try_finished(self, info: TryInfo) -> None:
        """A try ended (its supervisor exited, or it was ended as a zombie)."""

    def on_run_finished(self, run: RunInfo) -> None:
        """A DAG run ended ``success`` or ``failed``."""

    def on_zombie(self, info: TryInfo, reason: str) -> None:
        """A try was ended as a zombie (its supervisor is gone); ``reason`` says how that was seen."""

    def on_deadline_missed(self, miss: DeadlineMissInfo) -> None:
        """A DAG run or task instance missed its deadline (once per run / task instance)."""


EVENTS = frozenset(name for name in vars(Listener) if name.startswith("on_"))
"""The event names :meth:`Listeners.emit` accepts."""


class Listeners:
    """The listeners of one scheduler; :meth:`emit` fans an event out to each."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self.listeners: list[Listener] = list(listeners)

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def add(self, listener: Listener) -> None:
        """Append ``listener``."""
        self.listeners.append(listener)

    def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Call ``event`` (e.g. ``"on_try_finished"``) on every listener; log, never raise, their errors.

        Raises ``ValueError`` for an event name :class:`Listener` does not define (a programming error).
        """
        if event not in EVENTS:
            raise ValueError(f"unknown listener event {event!r}; known: {', '.join(sorted(EVENTS))}")
        for listener in self.listeners:
            try:
                getattr(listener, event)(*args, **kwargs)
            except Exception:  # noqa: BLE001 — a listener must never stop the scheduler
                log.exception("listener %s failed on %s", type(listener).__name__, event)


__all__ = ["EVENTS", "DeadlineMissInfo", "Listener", "Listeners", "RunInfo", "TryInfo"]
