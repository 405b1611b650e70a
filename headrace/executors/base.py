"""The executor interface: hand tries to supervisors, report when supervisors end.

An executor never decides a try's outcome: the supervisor writes it to the
metadata DB itself. Executor events only say that a supervisor process ended
(and with which exit code), so the scheduler wakes at once and can catch a
supervisor that died before writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from headrace.supervisor.request import TryRequest


@dataclass(frozen=True)
class ExecutorEvent:
    """Something that happened to a try's supervisor."""

    ti_id: int
    """``task_instance.id`` of the try."""
    try_number: int
    kind: Literal["exited"]
    """``exited``: the supervisor process ended (the try's outcome is in the DB unless it crashed)."""
    exit_code: int | None
    """The supervisor's exit code (0 recorded, 2 claim lost, 1 supervisor error, negative: killed by
    that signal); None when the executor does not see it: it lost track of it (its helper died), or the
    supervisor ran elsewhere (Celery) and the executor only saw in the DB that the try ended."""


class Executor(Protocol):
    """Runs tries. ``queue`` never blocks on a try; ``sync`` never blocks at all."""

    def start(self) -> None:
        """Prepare to accept tries (helper processes may still be started lazily)."""

    def open_slots(self) -> int:
        """How many more tries it accepts now (``parallelism`` minus tries in flight)."""

    def queue(self, request: TryRequest) -> None:
        """Hand over one try. Raises ``ExecutorError`` if it cannot."""

    def sync(self) -> list[ExecutorEvent]:
        """Events since the last call (non-blocking)."""

    def has(self, ti_id: int, try_number: int) -> bool:
        """True while the try was handed to this executor and its supervisor has not been seen to end."""

    def fileno(self) -> int | None:
        """A descriptor readable when events wait (select on it to wake at once), or None.

        It may change between calls (a helper is restarted): ask again each loop.
        """

    def sync_due_in(self) -> float | None:
        """Seconds until ``sync()`` may have news that ``fileno()`` cannot signal (an executor that learns of
        ends by polling), so the scheduler's wait ends then; None: ``fileno()`` (or nothing) wakes it."""

    def terminate(self) -> None:
        """Stop helper processes. Supervisors are detached and keep running their tries."""


__all__ = ["Executor", "ExecutorEvent", "TryRequest"]
