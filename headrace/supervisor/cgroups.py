"""Containment of a try: every process it starts ends with it, escaped descendants included.

A task may start processes that leave its process group and session
(``subprocess.Popen(..., start_new_session=True)``, a daemonizing program).
When the task process ends, the supervisor kills whatever of the try is still
running, counts it (``task_try.processes_left`` / ``processes_killed``) and
only then records the outcome. How it finds those processes is chosen by
``core.try_containment``:

* **cgroup** — each try runs in its own control group, made under the
  supervisor's own cgroup on a writable hierarchy: cgroup v2 (the unified
  hierarchy; ``cgroup.kill`` where the kernel has it, 5.14+) or, where v2
  cannot be written, a v1 hierarchy (``memory``, else ``pids``, ``freezer``).
  Membership is inherited by every descendant and cannot be left without
  writing to the hierarchy, so the cgroup is exactly the try. Where the
  cgroup accounts memory (v2 with the ``memory`` controller enabled for its
  children, or v1 ``memory``) the memory figures come from it: the try's peak
  (``memory.peak`` / ``memory.max_usage_in_bytes``, the kernel's high-water
  mark, short spikes and escaped processes included) and the memory in use
  that ``memory_limit`` is checked against (the working set: charged memory
  less inactive page cache, which the kernel can drop at any time).
* **marker** — best effort where no cgroup can be made: the supervisor is a
  child subreaper (``PR_SET_CHILD_SUBREAPER``), so a descendant orphaned by a
  dying parent is re-parented to it rather than to init and stays in its tree;
  and every process whose environment carries the try's marker
  (:data:`TRY_MARKER`, set in the task process before user code runs and so
  inherited by everything it executes) is the try's too. A process that clears
  its environment after a double fork while the supervisor is gone escapes.
* **auto** (the default) — cgroup where a hierarchy is writable, else marker.

No race with the task's code: the supervisor makes the cgroup before it
forks the task process; the task process moves itself in (writes its pid to
``cgroup.procs``, or on v1 its only thread to ``tasks``: :meth:`Containment.join`)
while it waits at its gate, so nothing the task runs is
ever outside, and the move (which can wait for an RCU grace period, a few
milliseconds) overlaps the supervisor's claim transaction instead of adding
to it. After the try the cgroup is emptied and removed (``rmdir``).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TRY_MARKER = "HEADRACE_TRY_ID"
"""Environment variable every process of a try inherits: ``<ti id>-<try number>-<supervisor pid>``."""

CGROUP_PREFIX = "headrace-try-"
"""Name prefix of the try cgroups (``headrace-try-<ti id>-<try number>-<supervisor pid>``)."""

MODES = ("auto", "cgroup", "marker")
"""The values of ``core.try_containment``."""

KILL_TIMEOUT = 5.0
"""Seconds :meth:`Containment.kill_all` keeps killing until no process of the try is left."""

PR_SET_CHILD_SUBREAPER = 36
"""``prctl`` option (linux/prctl.h): orphaned descendants are re-parented to this process, not to init."""

_V1_CONTROLLERS = ("memory", "pids", "freezer")
"""v1 hierarchies a try cgroup may be made in, best first (``memory`` also gives the memory figures)."""


class ContainmentError(OSError):
    """Raised when ``core.try_containment = cgroup`` but no try cgroup can be made (the try does not start)."""


@dataclass(frozen=True)
class Hierarchy:
    """A writable cgroup hierarchy: where this process's try cgroups are made."""

    version: int
    """2 (unified) or 1."""
    parent: Path
    """This process's own cgroup in the hierarchy; try cgroups are made in it."""
    controller: str | None
    """v1: the controller the hierarchy is mounted with (``memory``, ``pids``, ``freezer``); v2: None."""
    memory: bool
    """Try cgroups account memory (v1 ``memory``, or v2 with ``memory`` in the parent's ``cgroup.subtree_control``)."""

    def describe(self) -> str:
        """E.g. ``cgroup v1 memory at /sys/fs/cgroup/memory/x`` or ``cgroup v2 at /sys/fs/cgroup (no memory)``."""
        kind = f"cgroup v1 {self.controller}" if self.version == 1 else "cgroup v2"
        memory = "" if self.memory else " (memory not accounted: sampled instead)"
        return f"{kind} at {self.parent}{memory}"


def _read(path: Path) -> str:
    """The whole (ASCII) file at ``path``: raw reads, no buffered text stream to build (the try path reads a
    few of these per try). Raises ``OSError``, or ``ValueError`` for bytes that are not ASCII."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii")


def _own_cgroups(proc: Path) -> dict[str, str]:
    """``/proc/self/cgroup`` as controller → path; the v2 entry under ``""``; named v1 ones as ``name=…``."""
    own: dict[str, str] = {}
    for line in _read(proc / "self" / "cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _mounts(proc: Path) -> list[tuple[Path, str, set[str]]]:
    """``(mount point, fs type, super options)`` of every cgroup/cgroup2 mount (``/proc/self/mountinfo``)."""
    found = []
    for line in _read(proc / "self" / "mountinfo").splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        fstype = fields[sep + 1]
        if fstype in ("cgroup", "cgroup2"):
            root = fields[3]
            if root != "/":  # a bind mount of a sub-tree: our paths would not resolve under it
                continue
            found.append((Path(fields[4]), fstype, set(fields[sep + 3].split(","))))
    return found


def _writable(parent: Path) -> bool:
    return parent.is_dir() and os.access(parent, os.W_OK) and os.access(parent / "cgroup.procs", os.W_OK)


def find_hierarchy(proc: Path = Path("/proc")) -> Hierarchy | None:
    """The best writable hierarchy to make try cgroups in, or None (not Linux, no cgroups, not allowed).

    Order: v2 whose children get the memory controller; v1 ``memory``; v2
    without memory; v1 ``pids``; v1 ``freezer``. Reads ``/proc/self/cgroup``
    and ``/proc/self/mountinfo`` under ``proc``; never raises.
    """
    try:
        own = _own_cgroups(proc)
        mounts = _mounts(proc)
    except (OSError, ValueError):
        return None
    v2: Hierarchy | None = None
    v1: dict[str, Hierarchy] = {}
    for mount, fstype, options in mounts:
        if fstype == "cgroup2" and "" in own and v2 is None:
            parent = mount / own[""].lstrip("/")
            if _writable(parent):
                try:
                    memory = "memory" in _read(parent / "cgroup.subtree_control").split()
                except OSError:
                    memory = False
                v2 = Hierarchy(2, parent, None, memory)
        elif fstype == "cgroup":
            for controller in _V1_CONTROLLERS:
                if controller in options and controller in own and controller not in v1:
                    parent = mount / own[controller].lstrip("/")
                    if _writable(parent):
                        v1[controller] = Hierarchy(1, parent, controller, controller == "memory")
    ranked = [
        v2 if v2 is not None and v2.memory else None,
        v1.get("memory"),
        v2,
        v1.get("pids"),
        v1.get("freezer"),
    ]
    return next((h for h in ranked if h is not None), None)


@functools.cache
def hierarchy_in_use(mode: str) -> Hierarchy | None:
    """The hierarchy ``mode`` (a ``core.try_containment`` value) uses, or None for marker containment.

    Looked up once per process (the fork server does it before it forks, so
    supervisors inherit the answer). Raises :class:`ContainmentError` for
    ``cgroup`` when no hierarchy is writable, ``ValueError`` for an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"core.try_containment must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "marker":
        return None
    found = find_hierarchy()
    if found is None and mode == "cgroup":
        raise ContainmentError(
            "core.try_containment = cgroup, but no writable cgroup hierarchy was found "
            "(cgroup v2, or v1 memory/pids/freezer, where this process's cgroup can be written)"
        )
    return found


def describe_mode(mode: str) -> str:
    """One line for ``headrace doctor``: what ``mode`` amounts to on this host. Never raises."""
    try:
        found = hierarchy_in_use(mode)
    except (ContainmentError, ValueError) as exc:
        return str(exc)
    if found is None:
        return "best-effort (environment marker and child subreaper): no cgroup"
    return f"each try in its own cgroup: {found.describe()}"


@functools.cache
def libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (None where there is none), looked up once per process: the fork server calls it
    before it forks, so supervisors inherit it."""
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def become_subreaper() -> bool:
    """Make this process a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER, 1)``); False where not possible."""
    prctl = libc_prctl()
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def own_descendants() -> list[int]:
    """Pids of every live descendant of this process (``/proc/self/task/*/children``, recursively).

    Needs ``CONFIG_PROC_CHILDREN`` (all mainstream kernels); returns ``[]`` where it is missing.
    """
    found: list[int] = []
    todo = [f"/proc/self/task/{tid}/children" for tid in _listdir("/proc/self/task")]
    while todo:
        path = todo.pop()
        try:
            pids = [int(p) for p in _read(Path(path)).split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            found.append(pid)
            todo.extend(f"/proc/{pid}/task/{tid}/children" for tid in _listdir(f"/proc/{pid}/task"))
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def marked_processes(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds ``TRY_MARKER=<marker>`` (``/proc/*/environ``).

    A process sees its environment as it was at ``execve``: a marker set later
    in the same process (the task process itself) shows only in what it
    executes afterwards. Processes we may not read are skipped.
    """
    needle = f"{TRY_MARKER}={marker}".encode()
    found = []
    me = os.getpid()
    for name in _listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(name))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def _signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _has_children() -> bool:
    """True while this process has a child, running or exited and not yet reaped (one ``waitid``)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def reap_orphans() -> int:
    """Reap every exited child of this process without blocking (escaped processes re-parented to the
    subreaper end as its children); return how many. Call only when no child's status is still wanted."""
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


@dataclass(frozen=True)
class Leftovers:
    """What :meth:`Containment.kill_all` found of a try after its task process ended."""

    left: int
    """Processes of the try found running (each was sent SIGKILL)."""
    killed: int
    """Of those, how many are gone (less than ``left`` only if one outlived ``KILL_TIMEOUT``, stuck in the kernel)."""


class Containment:
    """The processes of one try: its cgroup when there is one, else its marker and the supervisor's tree.

    Built in the supervisor before the task process is forked
    (:meth:`prepare`); the task process calls :meth:`join` before it runs
    anything; the supervisor reads memory (:meth:`memory_in_use`,
    :meth:`memory_peak`), signals (:meth:`signal`) and at the end empties and
    removes it (:meth:`kill_all`, :meth:`remove`).
    """

    def __init__(self, hierarchy: Hierarchy | None, marker: str, *, made: bool = False, ours: bool = True) -> None:
        """``made``: the cgroup exists already, so :meth:`remove` removes it. ``ours``: this process is the
        try's supervisor, so its descendants are the try's too (False when adopting the cgroup a dead
        supervisor left: then only its members are, never the descendants of, say, the fork server)."""
        self.hierarchy = hierarchy
        self._ours = ours
        self.marker = marker
        """This try's :data:`TRY_MARKER` value."""
        self.path: Path | None = hierarchy.parent / f"{CGROUP_PREFIX}{marker}" if hierarchy is not None else None
        """The try's cgroup directory (None: marker containment)."""
        self._made = made

    @property
    def kind(self) -> str:
        """``cgroup`` or ``marker``, as recorded on ``task_try.containment``."""
        return "cgroup" if self.path is not None else "marker"

    def prepare(self) -> None:
        """In the supervisor, before the fork: make the try's cgroup (a no-op for marker containment).

        Raises ``OSError`` when the directory cannot be made; an existing one
        (left by a killed supervisor whose pid came round again) is reused.
        """
        if self.path is None:
            return
        try:
            os.mkdir(self.path)
        except FileExistsError:
            pass
        self._made = True

    def join(self) -> None:
        """In the task process, before it runs anything: set the marker, move into the try's cgroup.

        Call it while the process has a single thread (as a freshly forked child has): on v1 only the
        calling thread is moved. Raises ``OSError`` when the move is refused.
        """
        os.environ[TRY_MARKER] = self.marker
        if self.path is not None:
            # A raw write: the first thing a freshly forked task process does, and a text stream (codec,
            # buffers) would copy some 250 of the pages it shares with its supervisor.
            fd = os.open(self.path / self._join_file, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")  # 0: the writing process (v1 ``tasks``: the writing thread)
            finally:
                os.close(fd)

    @property
    def _join_file(self) -> str:
        """The file :meth:`join` writes: v1 ``tasks``, v2 ``cgroup.procs``.

        The task process joins while it has one thread (just forked), so on v1 moving that thread moves
        the process; and the kernel moves the writing thread alone without taking the global lock that
        a whole-process move takes (``cgroup_threadgroup_rwsem``, whose write side waits for an RCU grace
        period and slows every fork and exit on the host meanwhile): a move of a few tenths of a
        millisecond instead of up to tens under load. v2 refuses thread moves outside threaded
        subtrees, so there the process is moved.
        """
        return "tasks" if self.hierarchy is not None and self.hierarchy.version == 1 else "cgroup.procs"

    def pids(self) -> list[int]:
        """Live processes of the try now (cgroup members, else marked ones and the supervisor's descendants)."""
        if self.path is not None and not self._ours:
            return sorted(self._members())
        if self.path is not None:
            # Anything the cgroup missed (its task process could not join) is still a descendant of ours.
            return sorted(set(self._members()) | set(own_descendants()))
        return sorted(set(own_descendants()) | set(marked_processes(self.marker)))

    def _members(self) -> list[int]:
        """Pids in the try's cgroup (``cgroup.procs``; [] without a cgroup or when it cannot be read)."""
        if self.path is None:
            return []
        try:
            return [int(p) for p in _read(self.path / "cgroup.procs").split()]
        except (OSError, ValueError):
            return []

    def memory_in_use(self) -> int | None:
        """Bytes the try uses now by its cgroup's accounting, or None where the cgroup gives no figure.

        The working set: charged memory (``memory.current`` / ``memory.usage_in_bytes``)
        less the inactive file cache (``memory.stat``), which the kernel reclaims first.
        """
        if self.path is None or self.hierarchy is None or not self.hierarchy.memory:
            return None
        v2 = self.hierarchy.version == 2
        try:
            usage = int(_read(self.path / ("memory.current" if v2 else "memory.usage_in_bytes")))
            inactive_key = "inactive_file" if v2 else "total_inactive_file"
            inactive = 0
            for line in _read(self.path / "memory.stat").splitlines():
                key, _, value = line.partition(" ")
                if key == inactive_key:
                    inactive = int(value)
                    break
        except (OSError, ValueError):
            return None
        return max(0, usage - inactive)

    def memory_peak(self) -> int | None:
        """The try's peak memory in bytes (``memory.peak`` v2, ``memory.max_usage_in_bytes`` v1), or None."""
        if self.path is None or self.hierarchy is None or not self.hierarchy.memory:
            return None
        name = "memory.peak" if self.hierarchy.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(self.path / name))
        except (OSError, ValueError):
            return None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process of the try found now (missing ones are ignored)."""
        _signal_all(self.pids(), signum)

    def kill_all(self, timeout: float = KILL_TIMEOUT) -> Leftovers:
        """SIGKILL every process of the try until none is left (or ``timeout`` s passed); count them.

        v2 with ``cgroup.kill``: one write kills the whole cgroup, forks in
        flight included. Otherwise each found process is SIGKILLed and the
        search repeated: a process with SIGKILL pending cannot fork any more,
        so each round finds only what was forked before the previous one; it
        ends when every process signalled is gone (a zombie counts as gone).
        Zombies re-parented to this (subreaper) process are reaped (when the
        try is ``ours``: an adopted cgroup's sweep reaps nobody's children).
        """
        if self.path is not None and (not self._ours or not _has_children()) and not self._members():
            # The common case, in two reads: the cgroup is empty and this process has no child, so no
            # descendant either (the union :meth:`pids` takes has nothing to add).
            return Leftovers(left=0, killed=0)
        signalled: set[int] = set()
        deadline = time.monotonic() + timeout
        found = [p for p in self.pids() if _alive(p)]
        if not found:  # nothing of the try is left, and nothing alive is left to fork more
            if self._ours:  # never reap another's children (the fork server's supervisors)
                reap_orphans()
            return Leftovers(left=0, killed=0)
        if found and self.path is not None and self.hierarchy is not None and self.hierarchy.version == 2:
            try:
                with open(self.path / "cgroup.kill", "w", encoding="ascii") as f:
                    f.write("1")
            except OSError:  # before 5.14: one by one below
                pass
        pause = 0.0005
        while True:
            _signal_all(found, signal.SIGKILL)
            signalled.update(found)
            if self._ours:  # never reap another's children (the fork server's supervisors)
                reap_orphans()
            pending = [p for p in signalled if _alive(p)]
            found = [p for p in self.pids() if p not in signalled and _alive(p)]
            if (not pending and not found) or time.monotonic() >= deadline:
                break
            time.sleep(pause)  # SIGKILL is delivered when the process next runs: give it the CPU
            pause = min(pause * 2, 0.02)
        survivors = [p for p in signalled if _alive(p)]
        return Leftovers(left=len(signalled), killed=len(signalled) - len(survivors))

    def remove(self) -> bool:
        """Remove the try's cgroup (a no-op without one); True when it is gone.

        Kills what is left in it first. Never raises: a cgroup that cannot be
        removed (a process stuck in the kernel) is left, and False returned.
        """
        if self.path is None or not self._made:
            return True
        for _ in range(50):
            try:
                os.rmdir(self.path)
                self._made = False
                return True
            except FileNotFoundError:
                self._made = False
                return True
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    return False
            self.kill_all(timeout=0.1)
        return False


def stale_cgroups(hierarchy: Hierarchy) -> list[Path]:
    """Try cgroups in ``hierarchy`` whose supervisor (the name's last number) is not alive.

    A supervisor killed with SIGKILL cannot remove its try's cgroup (its task
    process dies with it, by ``PR_SET_PDEATHSIG``; escaped processes may stay).
    A pid that came round again to another process hides one until that ends.
    """
    stale = []
    for name in _listdir(str(hierarchy.parent)):
        if not name.startswith(CGROUP_PREFIX):
            continue
        try:
            supervisor_pid = int(name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if not os.path.exists(f"/proc/{supervisor_pid}"):
            stale.append(hierarchy.parent / name)
    return stale


def remove_stale_cgroups(hierarchy: Hierarchy | None) -> int:
    """Kill what is left in each stale try cgroup (:func:`stale_cgroups`) and remove it; return how many went.

    The fork server calls it when it starts and whenever one of its supervisors
    ends abnormally; a supervisor started on its own (``python -m
    headrace.supervisor``) calls it once its try is recorded. So a supervisor
    that was killed leaves nothing behind for long. Never raises.
    """
    if hierarchy is None:
        return 0
    removed = 0
    for path in stale_cgroups(hierarchy):
        if Containment(hierarchy, path.name[len(CGROUP_PREFIX) :], made=True, ours=False).remove():
            removed += 1
    return removed


def try_marker(ti_id: int, try_number: int, supervisor_pid: int) -> str:
    """The :data:`TRY_MARKER` value and cgroup name suffix of a try: ``<ti id>-<try number>-<supervisor pid>``.

    The supervisor's pid tells apart tries that share a task instance id and
    try number (two metadata databases on one host, as in tests).
    """
    return f"{ti_id}-{try_number}-{supervisor_pid}"


__all__ = [
    "CGROUP_PREFIX",
    "KILL_TIMEOUT",
    "MODES",
    "TRY_MARKER",
    "Containment",
    "ContainmentError",
    "Hierarchy",
    "Leftovers",
    "become_subreaper",
    "describe_mode",
    "find_hierarchy",
    "hierarchy_in_use",
    "libc_prctl",
    "marked_processes",
    "own_descendants",
    "reap_orphans",
    "remove_stale_cgroups",
    "stale_cgroups",
    "try_marker",
]
