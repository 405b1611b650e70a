"""Helpers for testing headrace and DAGs: a fake clock the scheduler loop accepts.

``FakeClock`` satisfies :class:`headrace.scheduler.loop.Clock`: ``now()``
returns a settable time and ``wait()`` never sleeps — it polls the given file
descriptors once and, if none is readable, advances the fake time by the
timeout, as if that long had passed.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock for tests: starts at ``start`` (UTC-aware) and moves only when told (or by ``wait``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2024, 1, 1, tzinfo=UTC)
        if self.current.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self.waits: list[float] = []
        """Every timeout ``wait`` was called with, in seconds."""

    def now(self) -> datetime:
        """The fake current time."""
        return self.current

    def advance(self, seconds: float) -> datetime:
        """Move the fake time forward by ``seconds``; return the new time."""
        self.current += timedelta(seconds=seconds)
        return self.current

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (UTC-aware)."""
        self.current = when

    def wait(self, fds: Sequence[int], timeout: float) -> list[int]:
        """Return the readable ``fds`` at once; if none, advance by ``timeout`` and return []."""
        self.waits.append(timeout)
        readable, _, _ = select.select(list(fds), [], [], 0)
        if not readable:
            self.advance(timeout)
        return list(readable)


__all__ = ["FakeClock"]
