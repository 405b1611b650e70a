"""Riding out a database outage in the middle of the scheduler loop: :class:`OutageRider`.

The policy, apart from what the scheduler does once it is back
(:meth:`~headrace.scheduler.loop.Scheduler.ride_out_outage`): the outage is
logged once and the recovery once; the scheduler waits with capped
exponential backoff (0.1 s doubling to 5 s, :func:`~headrace.db.outage.backoff`)
and tries to reconnect after each wait, until it succeeds, a stop is asked
for, or ``database.outage_tolerance`` seconds have passed since the outage
began (then the error is raised). The outage counts as over only once a
whole loop has worked (the loop resets :attr:`OutageRider.began`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from headrace.db.outage import backoff, is_outage, one_line

log = logging.getLogger("headrace.scheduler.loop")


class OutageRider:
    """How long the database has been away, and the wait-and-reconnect loop (see the module docstring)."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        """``database.outage_tolerance``, in seconds."""
        self.began: float | None = None
        """Monotonic time the current outage began; None once a whole loop has worked since."""

    def ride_out(
        self,
        exc: BaseException,
        *,
        wait: Callable[[float], object],
        stopped: Callable[[], bool],
        drop_connections: Callable[[], None],
        reconnect: Callable[[], bool],
    ) -> None:
        """Wait (``wait(seconds)``) and ``reconnect()`` until it returns, or until ``stopped()``.

        ``exc`` is the outage error the loop caught. ``drop_connections()`` is
        called once, before the first wait. ``reconnect()`` returns True when
        this scheduler still leads (False: another scheduler holds the lease,
        logged here); an outage error it raises means another wait. Raises
        ``exc``, or the reconnect's error, past the tolerance; other errors of
        ``reconnect`` propagate.
        """
        first = self.began is None
        began = self.began = self.began if self.began is not None else time.monotonic()
        if time.monotonic() - began > self.tolerance:
            log.error(
                "the database has failed every loop for %.0f s (database.outage_tolerance); giving up",
                self.tolerance,
            )
            raise exc
        if first:
            log.warning(
                "lost the database (%s); waiting for it to come back (up to %.0f s)", one_line(exc), self.tolerance
            )
        drop_connections()
        attempt = 0
        while not stopped():
            attempt += 1
            wait(backoff(attempt))
            if stopped():
                return
            try:
                if not reconnect():
                    log.error(
                        "the database is back after %.1f s, but another scheduler holds the lease; stopping",
                        time.monotonic() - began,
                    )
                    return
            except Exception as again:
                if not is_outage(again):
                    raise
                if time.monotonic() - began > self.tolerance:
                    log.error(
                        "the database is still unreachable after %.0f s (database.outage_tolerance); giving up",
                        self.tolerance,
                    )
                    raise
                continue
            if first:
                log.warning(
                    "the database is back after %.1f s (%d attempts); resuming", time.monotonic() - began, attempt
                )
            return


__all__ = ["OutageRider"]
