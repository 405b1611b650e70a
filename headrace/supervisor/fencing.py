"""Fencing: a try whose supervisor is gone must stop running before another try of it starts.

Two halves, so that neither depends on the other alone:

* **From below** — :func:`die_with_parent`: a task process (and a callback
  child) asks the kernel for SIGKILL the moment the process that forked it
  dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, see prctl(2)). A supervisor
  killed with SIGKILL therefore takes its task process with it at once. The
  request survives ``execve`` but is not inherited by the task's own
  children (a ``bash_command``'s shell), hence:
* **From above** — :func:`fence_try`: before the scheduler ends a try as a
  zombie on this host, it SIGKILLs what is left of the try's process group
  (the task process leads a group whose id is its pid) and waits for it to
  be gone. The recorded ``(pid, process start time)`` is checked first, so a
  stranger that was given the same pid is never hit.

A try on another host cannot be fenced from here: the scheduler waits until
its heartbeat is older than ``scheduler.task_instance_heartbeat_timeout``, by
which time a supervisor that lives would have beaten (and one that cannot
reach the database while its task ends keeps the outcome on disk; see
``supervise``).

Not covered: a descendant that left the task's process group (``setsid``,
a daemonizing program) after its task process was killed escapes the group
kill; the supervisor's own tree kill (``ProcessTree``) finds such processes
only while it lives.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time

import psutil

from headrace.supervisor.identity import START_TIME_TOLERANCE, ProcessIdentity

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal delivered to this process when its parent thread dies (linux/prctl.h)."""

FENCE_WAIT = 2.0
"""Seconds :func:`fence_try` waits for the killed processes to be gone."""


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_libc = _load_libc()
"""The C library, loaded once at import (in the fork server), not in every forked child."""
_prctl = getattr(_libc, "prctl", None)
"""libc's ``prctl``, looked up here once: ctypes makes a function object on each first attribute access, which
in a freshly forked child costs some 80 copy-on-write page faults."""


def die_with_parent(parent_pid: int) -> bool:
    """In a freshly forked child: be SIGKILLed when the parent dies; exit now if it already has.

    ``parent_pid`` is the pid of the process that forked us (read before the
    fork): if ``os.getppid()`` differs after the request was set, the parent
    died in between and the child leaves at once (``os._exit(1)``). Must be
    called from the child's only thread, before it runs anything. Returns
    False where ``prctl`` is not available (not Linux): the scheduler-side
    fence still applies.
    """
    ok = _prctl is not None and bool(_prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)  # None: not Linux
    if os.getppid() != parent_pid:
        os._exit(1)
    return ok


def _group_members(pgid: int, not_before: float | None) -> list[psutil.Process]:
    """Live processes whose process group is ``pgid`` (created no earlier than ``not_before``, if given)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) != pgid:
                continue
            if not_before is not None and proc.create_time() < not_before - START_TIME_TOLERANCE:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            found.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
    return found


def fence_task_group(task: ProcessIdentity, *, wait: float = FENCE_WAIT) -> bool:
    """SIGKILL every process left of a task process's group on this host; True once none is left.

    ``task`` is the recorded task process (it leads group ``task.pid``). If a
    process with that pid is alive but was created at another time, the pid
    and so the group belong to a stranger: nothing is signalled and True is
    returned (the task's own processes are gone). While any member lives,
    the kernel does not hand the group id out again, so members created after
    the task process are the task's descendants. Waits up to ``wait`` seconds
    for them to disappear; False if one survived (it may be stuck in the
    kernel: the caller tries again later).
    """
    if not task.is_local():
        raise ValueError(f"cannot fence {task}: it is not on this host")
    try:
        leader = psutil.Process(task.pid)
        if abs(leader.create_time() - task.start_time) > START_TIME_TOLERANCE:
            return True  # a stranger has the pid: our group cannot exist any more
    except psutil.NoSuchProcess:
        pass
    deadline = time.monotonic() + wait
    members = _group_members(task.pid, task.start_time)
    if members:
        log.warning(
            "fencing: killing %d process(es) left of task process %s: pids %s",
            len(members),
            task,
            ", ".join(str(p.pid) for p in members),
        )
    while members:
        for proc in members:
            try:
                proc.send_signal(signal.SIGKILL)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
        members = _group_members(task.pid, task.start_time)
    if members:
        log.error("fencing: %d process(es) of task process %s outlived SIGKILL for %.1f s", len(members), task, wait)
        return False
    return True


__all__ = ["FENCE_WAIT", "PR_SET_PDEATHSIG", "die_with_parent", "fence_task_group"]
