"""The claim: win the try, load what it needs and release its task process (the database part is one transaction
of the :class:`~.store.TryStore`: :meth:`.sql_store.SqlTryStore.claim`).

Steps 1 and 2 of the life of a try (see :mod:`.supervise`):

0. **fork ahead** (:func:`prestart`) — before anything else, the supervisor
   makes the try's cgroup and forks the task process, which joins the cgroup
   and waits at a gate knowing nothing of the try yet;
1. **claim** — ``queued → running`` for exactly this ``try_number``; losing
   means another supervisor owns the try, and nothing runs (the waiting task
   process is sent away: :meth:`Prestarted.cancel`);
2. **start** — in the same transaction, load the try's row, run and task entry
   (``_LOAD``: one round trip), insert the ``task_try`` row (host, supervisor
   pid and start time, the task's true pid and start time, log path), clear
   the TI's XComs; commit, then open the gate, handing the task process what
   it runs (:class:`~.task_process.TaskStart`) — the task's code runs only
   once the claim is committed. The next poke of a sensor in reschedule mode
   (the task instance still carries its ``reschedule_date``) continues its
   try: the try's row is reopened for this poke's processes instead; so does
   a deferred task resuming (``next_method`` set), which also keeps the XComs
   its try pushed before it deferred. The task process's pid and start time
   are known before the claim (it was forked ahead), so the store records
   them in its one transaction; the try's log is opened once the claim is won.

Why fork first: a forked process shares its parent's pages until one of them
writes to a page, which the kernel then copies (a page fault). Forked after
the claim's database work, the task process shared every page that work had
written, and the supervisor, writing the same pages again for its next
statements, took a second fault on each (some 900 per try); forked first, it
shares only what the fork server left, and each process copies a page once.

The statements are built once, with bind parameters (the fork server warms
them: :func:`.sql_store.warm_up`).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from headrace.config import Settings
from headrace.dagfiles.serialization import SerializedTask
from headrace.logs.capped import CappedLog, output_pipe
from headrace.logs.files import append_line, format_line, try_log_path
from headrace.states import TaskInstanceState
from headrace.storage.stores import Stores
from headrace.storage.xcoms import XComObjects
from headrace.supervisor import task_process
from headrace.supervisor.cgroups import Containment, hierarchy_in_use, try_marker
from headrace.supervisor.identity import ProcessIdentity
from headrace.supervisor.limits import ChildUsage, Limits
from headrace.supervisor.request import TryRequest
from headrace.supervisor.store import TryStart, TryStore, TryTarget
from headrace.supervisor.watch import Gate, TaskWatch, fork_child

log = logging.getLogger("headrace.supervisor")

TI = TaskInstanceState

EXIT_NOT_RELEASED = 4
"""Exit code of a task process whose claim transaction failed: it ran nothing."""
EXIT_NOT_CONTAINED = 5
"""Exit code of a task process that could not join its try's cgroup (``core.try_containment = cgroup``): it
ran nothing."""


SELF_FENCE_SHARE = 0.8
"""A supervisor whose heartbeats have not reached the database for this share of
``scheduler.task_instance_heartbeat_timeout`` kills its task: a scheduler on another host judges the
try dead at the full timeout and may retry it, and the two must never run at once."""


class _Try:
    """What the supervisor learned when it claimed the try."""

    def __init__(
        self,
        request: TryRequest,
        target: TryTarget,
        start: task_process.TaskStart,
        policy: SerializedTask | None,
        log_path: Path,
        try_row_id: int,
    ) -> None:
        self.request = request
        self.target = target
        self.start = start
        self.policy = policy
        self.log_path = log_path
        self.try_row_id = try_row_id
        self.watch: TaskWatch | None = None
        """Watching the task process, when it was started (None: the log could not be opened)."""
        self.sock: socket.socket | None = None
        """The supervisor's end of the task's channel."""
        self.start_error: str | None = None
        """Why the task process was not started."""
        self.log: CappedLog | None = None
        """The try's log (capped at ``logging.max_try_log_bytes``) once the task process was forked with it."""
        self.stores: Stores | None = None
        """The deployment's object stores (remote logs, XComs), opened on first use."""
        self.purging: threading.Thread | None = None
        """Deleting the stored XCom values this try cleared (from the object store), if any."""
        self.resumed = False
        """The try was reopened (a deferral that fired, a sensor's next poke): its log may hold earlier lines."""

    def say(self, message: str, level: str = "INFO") -> None:
        """Append a supervisor line to the try's log (never raises); one ``write``, as ``append_line``."""
        try:
            if self.log is not None:
                self.log.line("supervisor", message, level)
            else:
                append_line(self.log_path, "supervisor", message, level)
        except OSError as exc:
            log.warning("cannot write to %s: %s", self.log_path, exc)

    def close_log(self) -> None:
        """Drain the task's output into the log, write its capped tail and close it."""
        if self.log is not None:
            self.log.close()
            self.log = None


class Prestarted:
    """The try's task process, forked before the claim and waiting at its gate (:func:`prestart`)."""

    def __init__(
        self,
        *,
        pid: int | None,
        gate: Gate | None = None,
        sock: socket.socket | None = None,
        output_fd: int | None = None,
        containment: Containment | None = None,
        usage_before: ChildUsage | None = None,
        started: float = 0.0,
        error: str | None = None,
        warning: str | None = None,
    ) -> None:
        self.pid = pid
        """The task process (None: none was forked, see ``error``)."""
        self.gate = gate
        self.sock = sock
        """The supervisor's end of the task's channel."""
        self.output_fd = output_fd
        """Read end of the pipe that is the task's stdout and stderr (handed to the try's log once claimed)."""
        self.containment = containment
        self.usage_before = usage_before or ChildUsage(0.0, 0)
        """This process's children's usage just before the fork (the task's CPU is the difference)."""
        self.started = started
        """Monotonic time of the fork."""
        self.error = error
        """Why no task process was forked (``core.try_containment = cgroup`` and no cgroup): the try fails
        with it once claimed."""
        self.warning = warning
        """A line for the try's log once it is open (containment fell back to the marker)."""
        self.released = False
        """The gate was opened: the task runs, and the watch owns the process."""

    def release(self, start: task_process.TaskStart) -> None:
        """Open the gate: the task process runs ``start``."""
        assert self.gate is not None
        self.released = True
        self.gate.open(pickle.dumps(start, protocol=pickle.HIGHEST_PROTOCOL))

    def cancel(self) -> None:
        """Unless released: shut the gate (the task process exits without running anything), reap it, close
        its channel and pipe and remove its cgroup. Never raises; a no-op once released or cancelled."""
        if self.released or self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            if self.gate is not None:
                self.gate.shut()
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            if self.sock is not None:
                self.sock.close()
            if self.output_fd is not None:
                os.close(self.output_fd)
                self.output_fd = None
        except OSError as exc:  # a descriptor already gone: nothing left to undo
            log.warning("cancelling the task process %d: %s", pid, exc)
        finally:
            if self.containment is not None:
                self.containment.remove()


def prestart(settings: Settings, request: TryRequest) -> Prestarted:
    """Make the try's containment and fork its task process, held at a gate; the claim releases or cancels it.

    The child joins the containment (its cgroup, made here) and waits; it learns what to run only when the
    claim is committed (:meth:`Prestarted.release`). With ``core.try_containment = cgroup`` and no cgroup to
    be made nothing is forked (``error`` says why). Raises ``OSError`` if no pipe, socket or process can be
    made.
    """
    mode = settings.get_str("core", "try_containment")
    marker = try_marker(request.ti_id, request.try_number, os.getpid())
    warning = None
    containment = Containment(None, marker)
    try:
        containment = Containment(hierarchy_in_use(mode), marker)
        containment.prepare()
    except OSError as exc:
        if mode == "cgroup":
            return Prestarted(pid=None, error=f"cannot contain the try (core.try_containment = cgroup): {exc}")
        warning = f"cannot make the try's cgroup {containment.path}: {exc}; containment is best-effort"
        containment = Containment(None, marker)
    required = mode == "cgroup"
    made: list[int] = []
    try:
        read_fd, write_fd = output_pipe()
        made += [read_fd, write_fd]
        parent_sock, child_sock = socket.socketpair()
    except BaseException:
        for fd in made:
            os.close(fd)
        containment.remove()
        raise
    gate = Gate()

    def run() -> int:
        # A SIGTERM before the task process sets up its own handler ends it, rather than the supervisor's
        # handler it inherited.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # Into the try's cgroup before anything runs (the move overlaps the supervisor's claim transaction).
        os.close(read_fd)
        try:
            containment.join()
        except OSError as exc:
            level, what = ("ERROR", "not running the task") if required else ("WARNING", "containment is best-effort")
            os.write(
                write_fd, format_line("supervisor", f"cannot join {containment.path}: {exc}; {what}", level).encode()
            )
            if required:
                return EXIT_NOT_CONTAINED
        payload = gate.wait()
        if payload is None:
            return EXIT_NOT_RELEASED
        start = pickle.loads(payload)
        return task_process.main(start, child_sock, write_fd)

    usage_before = ChildUsage.now()
    try:
        pid = fork_child(run, close_in_child=[parent_sock])
    except BaseException:
        os.close(read_fd)
        parent_sock.close()
        containment.remove()
        raise
    finally:
        os.close(write_fd)  # the child holds it: the drain ends when the task's process tree is gone
        child_sock.close()
    gate.forked()
    return Prestarted(
        pid=pid,
        gate=gate,
        sock=parent_sock,
        output_fd=read_fd,
        containment=containment,
        usage_before=usage_before,
        started=time.monotonic(),
        warning=warning,
    )


def claim(settings: Settings, store: TryStore, request: TryRequest, task: Prestarted) -> _Try | None:
    """Claim the try through ``store`` (recording its task process, ``task``, forked ahead); None if the claim
    was lost. Then open the try's log, set up the watch and release the task process.

    The task process's true pid goes into the ``task_try`` row in the claim's
    commit; it waits on its gate and runs nothing until that commit succeeded
    (then it is released). If the claim fails (the store is unreachable), the
    task process keeps waiting: the caller retries the claim or cancels it
    (:meth:`Prestarted.cancel`), as it does when the claim is lost. Nothing is
    written when the claim is lost.
    """
    now = datetime.now(UTC)
    me = ProcessIdentity.of(os.getpid())
    log_path = try_log_path(
        settings.base_log_folder, request.dag_id, request.run_id, request.task_id, request.try_number, request.map_index
    )
    process_start_time: float | None = None
    if task.pid is not None:
        try:
            process_start_time = ProcessIdentity.of(task.pid).start_time
        except Exception:  # noqa: BLE001 - it may already be gone; the wait will tell
            process_start_time = None
    claimed = store.claim(
        TryStart(
            request=request,
            host=me.host,
            supervisor_pid=me.pid,
            supervisor_start_time=me.start_time,
            pid=task.pid,
            process_start_time=process_start_time,
            containment=task.containment.kind if task.pid is not None and task.containment is not None else None,
            log_path=str(log_path),
            now=now,
        )
    )
    if claimed is None:
        return None
    start = task_process.TaskStart(
        fileloc=request.fileloc,
        dag_id=claimed.target.dag_id,
        task_id=claimed.target.task_id,
        run=claimed.run,
        try_number=request.try_number,
        max_tries=claimed.max_tries,
        xcom_max_size=settings.get_int("core", "xcom_max_size"),
        start_date=now,
        xcom_backend=settings.get_str("core", "xcom_backend"),
        map_index=claimed.target.map_index,
        expanded_ti_count=claimed.expanded_ti_count,
        max_map_length=settings.get_int("core", "max_map_length"),
        conf_overrides_params=settings.get_bool("core", "dag_run_conf_overrides_params"),
        allowed_deserialization_classes=settings.get_str("core", "allowed_deserialization_classes"),
        allowed_deserialization_classes_regexp=settings.get_str("core", "allowed_deserialization_classes_regexp"),
        next_method=claimed.next_method,
        next_kwargs=claimed.next_kwargs,
    )
    current = _Try(request, claimed.target, start, claimed.policy, log_path, claimed.try_row_id)
    current.stores = store.stores()
    current.resumed = claimed.resumed
    try:
        try_log = CappedLog(log_path, settings.get_int("logging", "max_try_log_bytes"))
    except OSError as exc:
        current.start_error = f"cannot open the try's log {log_path}: {exc}"
    else:
        if task.pid is None:
            try_log.close(timeout=0)
            current.start_error = task.error or "the task process was not started"
        else:
            _watch(settings, store, current, task, try_log)
    if current.watch is not None and current.log is not None:
        if task.output_fd is not None:
            current.log.adopt_pipe(task.output_fd)  # drained by the watch's select: no thread per try
            task.output_fd = None
        current.watch.output = current.log
        task.release(current.start)
    if claimed.cleared_references and current.stores is not None:  # off the path: the store may be slow or down
        purge = XComObjects(current.stores).purge
        current.purging = threading.Thread(
            target=purge, args=(list(claimed.cleared_references),), name="xcom-purge", daemon=True
        )
        current.purging.start()
    return current


def _watch(settings: Settings, store: TryStore, current: _Try, task: Prestarted, try_log: CappedLog) -> int:
    """Set up ``current.watch`` (on the task process forked ahead), ``current.sock`` and ``current.log``;
    return the task process's pid. Its output pipe joins ``try_log`` before the task process is released."""
    assert task.pid is not None and task.sock is not None
    policy = current.policy
    limits = Limits(
        memory_limit=policy.memory_limit if policy else None,
        execution_timeout=policy.execution_timeout if policy else None,
    )
    watch = TaskWatch(
        store=store,
        target=current.target,
        try_row_id=current.try_row_id,
        limits=limits,
        say=current.say,
        poll_interval=settings.get_float("executor", "memory_poll_interval"),
        heartbeat_interval=settings.get_float("scheduler", "heartbeat_interval"),
        kill_grace_period=settings.get_float("executor", "kill_grace_period"),
        stop_requested=lambda: False,
        try_number=current.request.try_number,
        self_fence_after=SELF_FENCE_SHARE * settings.get_float("scheduler", "task_instance_heartbeat_timeout"),
        containment=task.containment,
    )
    watch.adopt(task.pid, task.usage_before, task.started)
    current.log = try_log  # the supervisor's own lines go through the same cap
    if task.warning is not None:
        current.say(task.warning, "WARNING")
    current.watch = watch
    current.sock = task.sock
    return task.pid
