"""Where the scheduler gets the time, and how it waits: :class:`Clock`.

:class:`SystemClock` in production; ``headrace.testing.FakeClock`` in tests.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where the scheduler gets the time, and how it waits."""

    def now(self) -> datetime:
        """The current time, UTC-aware."""

    def wait(self, fds: Sequence[int], timeout: float) -> list[int]:
        """Block until one of ``fds`` is readable or ``timeout`` s passed; return the readable fds."""


class SystemClock:
    """The real clock; waits with ``select``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, fds: Sequence[int], timeout: float) -> list[int]:
        readable, _, _ = select.select(list(fds), [], [], max(0.0, timeout))
        return list(readable)


__all__ = ["Clock", "SystemClock"]
