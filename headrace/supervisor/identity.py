"""Process identity that survives pid reuse: ``(host, pid, start_time)``.

A pid alone names a process only while it lives; once it exits the kernel may
give the same pid to an unrelated process. Recording the process creation
time (from psutil, seconds since the epoch) next to the pid tells the two
apart: a live process with the recorded pid but a different creation time is
somebody else.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import psutil

START_TIME_TOLERANCE = 0.05
"""Seconds two creation times may differ and still name the same process.

psutil derives the creation time from boot time + jiffies since boot, so
repeated reads of the same process can differ by a clock tick (10 ms) when the
boot time estimate moves; a reused pid is started at least a fork later, and
in practice much later.
"""


def hostname() -> str:
    """This machine's host name, as recorded on ``task_try.hostname``."""
    return socket.gethostname()


@dataclass(frozen=True)
class ProcessIdentity:
    """One process, named so that a reused pid is not mistaken for it."""

    host: str
    """Host name of the machine the process runs on (``socket.gethostname()``)."""
    pid: int
    """Process id on that host."""
    start_time: float
    """Process creation time, seconds since the epoch (``psutil.Process.create_time()``)."""

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        """The identity of live process ``pid`` on this host.

        Raises ``psutil.NoSuchProcess`` if no process has that pid.
        """
        return cls(host=hostname(), pid=pid, start_time=psutil.Process(pid).create_time())

    def is_local(self) -> bool:
        """True when the process runs (or ran) on this host."""
        return self.host == hostname()

    def is_alive(self) -> bool:
        """True only if, on this host, a process with this pid exists and was created at ``start_time``.

        Returns False for a process on another host (it cannot be checked from
        here; callers must use heartbeats for those), for a pid nobody has and
        for a reused pid. A zombie (exited, not yet reaped) counts as not alive.
        """
        if not self.is_local():
            return False
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.start_time) > START_TIME_TOLERANCE:
                return False
            return bool(proc.status() != psutil.STATUS_ZOMBIE)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} (started {self.start_time:.3f})"
