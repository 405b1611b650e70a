"""Process identity that survives pid reuse: ``(host, pid, start_time)``.

A pid alone names a process only while it lives; once it exits the kernel may
give the same pid to an unrelated process. Recording the process creation
time (from psutil, seconds since the epoch) next to the pid tells the two
apart: a live process with the recorded pid but a different creation time is
somebody else.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

import psutil

START_TIME_TOLERANCE = 0.05
"""Seconds two creation times may differ and still name the same process.

psutil derives the creation time from boot time + jiffies since boot, so
repeated reads of the same process can differ by a clock tick (10 ms) when the
boot time estimate moves; a reused pid is started at least a fork later, and
in practice much later.
"""


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if sys.platform.startswith("linux") else 0


def _read_proc(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def process_start_time(pid: int) -> float:
    """Creation time of live process ``pid``, seconds since the epoch: exactly ``psutil.Process(pid).create_time()``.

    On Linux it is computed as psutil does (``starttime`` of ``/proc/<pid>/stat`` in clock ticks, over
    ``SC_CLK_TCK``, plus ``btime`` of ``/proc/stat``) from two raw reads, without building a
    ``psutil.Process``: the try path calls it for every try, in freshly forked processes where each
    object and function it touches costs a copy-on-write page fault. Elsewhere it asks psutil.
    Raises ``psutil.NoSuchProcess`` if no process has that pid.
    """
    if not _CLOCK_TICKS:
        return float(psutil.Process(pid).create_time())
    try:
        stat = _read_proc(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(pid) from None
    ticks = float(stat[stat.rfind(b")") + 2 :].split()[19])
    for line in _read_proc("/proc/stat").splitlines():
        if line.startswith(b"btime"):
            return ticks / _CLOCK_TICKS + float(line.split()[1])
    raise RuntimeError("no btime line in /proc/stat")


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
        return cls(host=hostname(), pid=pid, start_time=process_start_time(pid))

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
