"""Resource accounting and limits for a try's process tree.

The tree is the task process plus all its descendants (``psutil``'s
``children(recursive=True)``). The supervisor samples it every
``executor.memory_poll_interval`` seconds:

* total RSS in bytes (the sum over the tree; shared pages count in every
  process that maps them, so this errs on the high side, like ``ps``);
* CPU seconds (user + system), keeping the highest figure seen for each
  process so a descendant that exits between samples still counts up to its
  last sample.

After the task process is reaped the figures are completed from
``getrusage(RUSAGE_CHILDREN)``: its ``ru_maxrss`` (KiB, the largest single
waited-for descendant) raises the peak, and its CPU delta covers every
descendant that was waited for. Killing goes to the process group *and* to
every pid found, so a descendant that left the group (``setsid``) still dies.

Where the try runs in a cgroup that accounts memory (:mod:`.cgroups`), the
supervisor takes the memory figures from the cgroup instead: the limit is
checked against its working set and the peak is its high-water mark. Then a
sample reads no RSS and measures the CPU of the cgroup's processes, found in
the cgroup rather than by a walk of every process on the host.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

MIB = 1024 * 1024


def format_mib(n_bytes: int | float) -> str:
    """``314572800`` → ``"300.0 MiB"``."""
    return f"{n_bytes / MIB:.1f} MiB"


def format_memory(n_bytes: int) -> str:
    """A byte count as ``memory_limit`` is written: ``268435456`` → ``"256 MiB"``, ``1610612736`` → ``"1.5 GiB"``.

    GiB from 1 GiB on, else MiB, else KiB, else bytes; whole numbers lose their
    decimals, others keep one.
    """
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= size:
            value = n_bytes / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n_bytes} bytes"


@dataclass(frozen=True)
class TreeSample:
    """One sample of a process tree."""

    rss_bytes: int
    """Sum of the RSS of every live process in the tree, in bytes."""
    pids: tuple[int, ...]
    """The pids seen, the root first."""
    source: str = "process tree RSS"
    """What ``rss_bytes`` measures, for the log: ``process tree RSS`` (sampled) or ``try's cgroup memory``."""


@dataclass(frozen=True)
class ChildUsage:
    """``getrusage(RUSAGE_CHILDREN)`` figures at one moment."""

    cpu_seconds: float
    """User + system CPU seconds of all waited-for descendants."""
    maxrss_bytes: int
    """``ru_maxrss`` × 1024: the largest RSS any waited-for descendant reached."""

    @classmethod
    def now(cls) -> ChildUsage:
        """Read the counters of the calling process's waited-for children."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(cpu_seconds=usage.ru_utime + usage.ru_stime, maxrss_bytes=int(usage.ru_maxrss) * 1024)


class ProcessTree:
    """Samples and kills the tree rooted at ``root_pid`` (which leads process group ``root_pid``)."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.peak_rss_bytes = 0
        """Highest ``rss_bytes`` sampled so far."""
        self._cpu_by_process: dict[tuple[int, float], float] = {}
        self._procs: dict[int, psutil.Process] = {}

    def _processes(self, pids: Iterable[int] | None = None) -> list[psutil.Process]:
        if pids is not None:  # given (the try's cgroup): no walk of the host's process table
            found = []
            for pid in pids:
                try:
                    found.append(psutil.Process(pid))  # new each time: its create_time tells a reused pid
                except psutil.NoSuchProcess:
                    continue
        else:
            try:
                root = self._procs.get(self.root_pid) or psutil.Process(self.root_pid)
                # children(recursive=True) reads the parent of every process on the host.
                found = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return []
        # Reuse Process objects so psutil's cached create_time keeps telling pids apart.
        procs = []
        for proc in found:
            known = self._procs.get(proc.pid)
            if known is None or known.create_time() != proc.create_time():
                self._procs[proc.pid] = known = proc
            procs.append(known)
        return procs

    def sample(self, pids: Iterable[int] | None = None, *, rss: bool = True) -> TreeSample:
        """Measure RSS and CPU of every live process in the tree now; update the peak.

        ``pids``: the processes to measure, when the caller knows them (the try's cgroup members),
        instead of the root and its descendants found through psutil, which reads every process on the
        host. ``rss=False``: CPU only (the caller has the memory figure from elsewhere, the cgroup);
        ``rss_bytes`` is then 0 and the peak is not raised.
        """
        total = 0
        seen: list[int] = []
        for proc in self._processes(pids):
            try:
                with proc.oneshot():
                    size = proc.memory_info().rss if rss else 0
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            total += size
            seen.append(proc.pid)
            cpu = times.user + times.system
            if cpu > self._cpu_by_process.get(key, 0.0):
                self._cpu_by_process[key] = cpu
        self.peak_rss_bytes = max(self.peak_rss_bytes, total)
        return TreeSample(rss_bytes=total, pids=tuple(seen))

    @property
    def sampled_cpu_seconds(self) -> float:
        """Sum over every process ever sampled of the most CPU seen for it."""
        return sum(self._cpu_by_process.values())

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process group and to every process of the tree found now.

        Processes that already exited are ignored; never raises for a missing process.
        """
        pids = [p.pid for p in self._processes()]
        try:
            os.killpg(self.root_pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in pids:
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        """SIGKILL the whole tree."""
        self.signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the whole tree (follow with :meth:`kill` after the grace period)."""
        self.signal(signal.SIGTERM)

    def final_usage(
        self, before: ChildUsage, after: ChildUsage, exact_peak_bytes: int | None = None
    ) -> tuple[int, float]:
        """``(peak_rss_bytes, cpu_seconds)`` once the root was reaped.

        ``before``/``after`` are :class:`ChildUsage` read just before the fork and
        just after the wait. Peak = max(sampled peak, ``ru_maxrss`` of children);
        CPU = max(rusage delta, sampled CPU), since each misses what the other saw.
        ``exact_peak_bytes``: the try cgroup's own high-water mark, when it has
        one; it replaces the sampled peak (it misses no spike and no escaped
        process), still raised by ``ru_maxrss``, which also counts the pages the
        task process shares with its supervisor (charged to the supervisor).
        """
        sampled = self.peak_rss_bytes if exact_peak_bytes is None else exact_peak_bytes
        peak = max(sampled, after.maxrss_bytes if after.maxrss_bytes > before.maxrss_bytes else 0)
        cpu = max(after.cpu_seconds - before.cpu_seconds, self.sampled_cpu_seconds)
        return peak, round(cpu, 6)


@dataclass(frozen=True)
class Limits:
    """The limits of one try, from its serialized task."""

    memory_limit: int | None = None
    """Bytes above which the try's processes are killed; None: no limit. Measured as the try cgroup's working
    set where it accounts memory (:mod:`.cgroups`), else as the sampled process-tree RSS."""
    execution_timeout: float | None = None
    """Seconds the task process may run before it is stopped; None: no limit."""

    def memory_exceeded(self, sample: TreeSample) -> bool:
        """True when ``sample`` is over the memory limit."""
        return self.memory_limit is not None and sample.rss_bytes > self.memory_limit

    def memory_message(self, sample: TreeSample) -> str:
        """The log line for a memory kill, e.g. ``memory_limit 256.0 MiB exceeded: process tree RSS 300.2 MiB; killing``."""
        assert self.memory_limit is not None
        return (
            f"memory_limit {format_mib(self.memory_limit)} exceeded: {sample.source} "
            f"{format_mib(sample.rss_bytes)}; killing"
        )
