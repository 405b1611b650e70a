"""SequentialExecutor: one try at a time, each in a fresh ``python -m headrace.supervisor`` process.

Slow (an interpreter start per try) and simple: for debugging, and for
databases that cannot take concurrent writers. ``sync()`` runs every queued
try to completion, one after the other, so it blocks for as long as they run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque

from headrace.config import Settings
from headrace.executors.base import ExecutorEvent
from headrace.supervisor.request import TryRequest


def supervisor_command(request: TryRequest) -> list[str]:
    """The command line that runs ``request``'s supervisor in a new interpreter."""
    return [sys.executable, "-m", "headrace.supervisor", request.to_json()]


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with ``settings`` on top (so children see the same configuration)."""
    return {**os.environ, **settings.to_env()}


class SequentialExecutor:
    """Runs queued tries one by one from ``sync()``; accepts one try at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queued: deque[TryRequest] = deque()

    def start(self) -> None:
        """Nothing to start."""

    def open_slots(self) -> int:
        """1 when nothing is waiting, else 0."""
        return 0 if self._queued else 1

    def queue(self, request: TryRequest) -> None:
        """Remember ``request``; it runs on the next ``sync()``."""
        self._queued.append(request)

    def has(self, ti_id: int, try_number: int) -> bool:
        """True while the try waits for the next ``sync()``."""
        return any(r.ti_id == ti_id and r.try_number == try_number for r in self._queued)

    def sync(self) -> list[ExecutorEvent]:
        """Run every queued try to completion; one ``exited`` event each."""
        events = []
        env = child_environment(self.settings)
        while self._queued:
            request = self._queued.popleft()
            code = subprocess.run(
                supervisor_command(request), env=env, stdin=subprocess.DEVNULL, check=False
            ).returncode
            events.append(ExecutorEvent(request.ti_id, request.try_number, "exited", code))
        return events

    def fileno(self) -> int | None:
        """None: nothing runs between calls, so there is nothing to wake up for."""
        return None

    def sync_due_in(self) -> None:
        """None: nothing runs between calls."""
        return None

    def terminate(self) -> None:
        """Forget tries not yet run (they stay ``queued``; the scheduler requeues them)."""
        self._queued.clear()
