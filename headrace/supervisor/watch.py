"""Watching a task process: one ``select`` on its pidfd and its channel, until it ends.

The supervisor sleeps in ``select`` on the process's pidfd (readable once it
exits), its end of the channel (readable when the task asks something) and
the task's output pipe (readable when it wrote; moved into the try's log at
once) — with a timeout of ``executor.memory_poll_interval``, so it
wakes at once for an exit or a request and otherwise only to sample the tree,
heartbeat and check the limits. No busy waiting, no sleeps.

Each heartbeat also checks, in the same ``UPDATE``, that the task instance is
still ``running`` this try. When it is not — a user marked it success or
failed (or a zombie check ended it) — the supervisor stops the task's process
tree (SIGTERM, then SIGKILL after ``executor.kill_grace_period``) and ends the
try with reason ``externally_set``, leaving the state the user set alone.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from headrace.states import EndReason
from headrace.supervisor.cgroups import Containment, Leftovers
from headrace.supervisor.fencing import die_with_parent
from headrace.supervisor.limits import ChildUsage, Limits, ProcessTree, TreeSample
from headrace.supervisor.protocol import (
    Ack,
    Deferral,
    Error,
    LineBuffer,
    ProtocolError,
    SetAssetEvents,
    SetRenderedFields,
    TaskDone,
    decode_request,
    encode,
    is_notification,
)
from headrace.supervisor.store import TryStore, TryTarget, one_line

log = logging.getLogger("headrace.supervisor")


class Gate:
    """A pipe a freshly forked task process waits on before it runs anything.

    The parent forks, then calls :meth:`forked`; later either :meth:`open`
    (the child goes on, with the bytes it was given) or :meth:`shut` (the
    child sees end-of-file and exits without running anything). If the parent
    dies first, the child sees end-of-file too.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()

    def wait(self) -> bytes | None:
        """In the child: block until the parent decides; the payload given to :meth:`open`, or None (shut)."""
        os.close(self._w)
        try:
            header = self._read(9)
            if len(header) < 9 or header[:1] != b"\x01":
                return None
            size = int.from_bytes(header[1:], "big")
            payload = self._read(size)
            return payload if len(payload) == size else None
        finally:
            os.close(self._r)

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the gate (fewer only at end of file): the payload is sized, so no other
        process that happens to hold the write end can keep the child waiting for end of file."""
        chunks = []
        while size > 0 and (chunk := os.read(self._r, min(size, 1 << 16))):
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def forked(self) -> None:
        """In the parent, right after the fork: drop the child's end."""
        os.close(self._r)

    def open(self, payload: bytes = b"") -> None:
        """Let the child run, handing it ``payload`` (what the parent learned after the fork: any size).

        A child already gone (it could not join its cgroup) is not an error here: its exit tells the rest.
        """
        try:
            view = memoryview(b"\x01" + len(payload).to_bytes(8, "big") + payload)
            while view:
                view = view[os.write(self._w, view) :]
        except BrokenPipeError:
            pass
        finally:
            os.close(self._w)

    def shut(self) -> None:
        """Tell the child to exit without running anything."""
        os.close(self._w)


@dataclass(frozen=True)
class WatchResult:
    """How a try ended, as the supervisor establishes it."""

    outcome: str
    """``success``, ``skipped``, ``failed``, ``retry``, ``fail_no_retry`` or ``reschedule`` (see
    ``outcome.next_state``)."""
    end_reason: EndReason
    error: str | None = None
    """One-line error for a failed try."""
    retry_delay: float | None = None
    """Seconds, when the task raised ``RetryTask(delay=…)``."""
    exit_code: int | None = None
    """Exit code of the task process, if it exited normally."""
    signal: int | None = None
    """Signal number that ended it (or 15 when the supervisor was told to stop it)."""
    peak_rss_bytes: int | None = None
    cpu_seconds: float | None = None
    external_state: str | None = None
    """With reason ``externally_set``: the task instance state someone else set (e.g. ``success``)."""
    processes_left: int | None = None
    """Processes of the try still running once the task process had ended (escaped descendants)."""
    processes_killed: int | None = None
    """Of those, how many the supervisor killed."""
    reschedule_date: datetime | None = None
    """With outcome ``reschedule``: when the sensor's next poke is due."""
    deferral: Deferral | None = None
    """With outcome ``deferred``: the trigger and where the task resumes."""


@dataclass
class _Kill:
    """A kill the supervisor started, if any (one per try: the first reason wins)."""

    reason: EndReason | None = None
    error: str | None = None
    escalate_at: float | None = None
    """Monotonic time to follow a SIGTERM with SIGKILL; None: nothing pending."""
    external_state: str | None = None
    """With ``externally_set``: the state someone else set."""


def _who(state: str | None) -> str:
    """Who sets a running task instance's state from outside: a user, or the scheduler removing a map index."""
    return "by the scheduler: its task or map index left the run" if state == "removed" else "by a user"


def classify(
    code: int,
    done: TaskDone | None,
    kill: _Kill,
    *,
    peak_rss_bytes: int | None,
    cpu_seconds: float | None,
    leftovers: Leftovers | None = None,
) -> WatchResult:
    """How a try ended, from the task process's wait code, its last report and the supervisor's kill.

    ``code`` is ``os.waitstatus_to_exitcode`` (negative: killed by that
    signal). In order: a kill the supervisor started decides (reason
    ``killed`` records signal 15, what the supervisor sent); else the task's
    own report (``TaskDone``); else a signal means ``killed``; else an exit
    without a report is ``failed``. ``leftovers``: what was killed of the try
    after the task process ended (recorded, never changes the outcome).
    """
    exit_code, signum = (None, -code) if code < 0 else (code, None)
    if kill.reason is EndReason.KILLED:
        signum = signal.SIGTERM.value
    base = WatchResult(
        outcome="failed",
        end_reason=EndReason.FAILED,
        exit_code=exit_code,
        signal=signum,
        peak_rss_bytes=peak_rss_bytes,
        cpu_seconds=cpu_seconds,
        processes_left=leftovers.left if leftovers is not None else None,
        processes_killed=leftovers.killed if leftovers is not None else None,
    )
    if kill.reason is not None:
        return replace(base, end_reason=kill.reason, error=kill.error, external_state=kill.external_state)
    if done is not None:
        if not done.started:
            reason = EndReason.NOT_STARTED
        else:
            reason = {
                "success": EndReason.SUCCESS,
                "skipped": EndReason.SKIPPED,
                "reschedule": EndReason.RESCHEDULED,
                "deferred": EndReason.DEFERRED,
            }.get(done.outcome, EndReason.FAILED)
        return replace(
            base,
            outcome=done.outcome,
            end_reason=reason,
            error=done.error,
            retry_delay=done.retry_delay,
            reschedule_date=done.reschedule_date,
            deferral=done.deferral,
        )
    if signum is not None:
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        return replace(base, end_reason=EndReason.KILLED, error=f"task process killed by signal {name} ({signum})")
    return replace(base, error=f"task process exited with code {exit_code} without reporting an outcome")


class Say(Protocol):
    def __call__(self, message: str, level: str = "INFO") -> None: ...


class Output(Protocol):
    """The task's output pipes, drained from the watch's own ``select`` (:class:`~headrace.logs.capped.CappedLog`)."""

    def polled_fds(self) -> list[int]:
        """Read ends to watch (those not at end of file yet)."""
        ...

    def read_pipe(self, read_fd: int) -> bool:
        """Move what ``read_fd`` holds into the log without blocking; False at end of file."""
        ...


def fork_child(run: Callable[[], int], close_in_child: Iterable[socket.socket] = ()) -> int:
    """Fork; the child closes ``close_in_child``, runs ``run()`` and ``os._exit``s with its result.

    The child leads its own process group (set on both sides of the fork, so
    the parent can signal the group as soon as this returns) and is SIGKILLed
    by the kernel if the parent dies (:func:`~.fencing.die_with_parent`): a
    task never outlives its supervisor. Returns the pid.
    """
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: never return into the parent's stack
        code = 1
        try:
            die_with_parent(parent)
            for sock in close_in_child:
                sock.close()
            code = run()
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:  # it already did it itself, or already exited
        pass
    return pid


def run_child(run: Callable[[], int], timeout: float, close_in_parent: Iterable[int] = ()) -> int | None:
    """Run ``run()`` in a forked child; return its exit code, or None if it was killed after ``timeout`` s."""
    pid = fork_child(run)
    for fd in close_in_parent:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        ProcessTree(pid).kill()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if ready else None


class TaskWatch:
    """Starts the task process and watches it: requests, samples, heartbeats, limits."""

    def __init__(
        self,
        *,
        store: TryStore,
        target: TryTarget,
        try_row_id: int,
        limits: Limits,
        say: Say,
        poll_interval: float,
        heartbeat_interval: float,
        kill_grace_period: float,
        stop_requested: Callable[[], bool],
        try_number: int,
        self_fence_after: float | None = None,
        containment: Containment | None = None,
    ) -> None:
        self.store = store
        """Where heartbeats go and the task's requests are answered (:class:`~.store.TryStore`)."""
        self.containment = containment
        """The try's processes beyond its tree (:mod:`.cgroups`); None: the process tree only."""
        self.output: Output | None = None
        """The task's output pipes, read whenever the wait wakes with them readable (set once forked)."""
        self.rendered_fields: dict[str, str] | None = None
        """The task's rendered template fields (``SetRenderedFields``), recorded with the outcome."""
        self.rendered_map_index: str | None = None
        """The label the task's ``TaskDone`` carried (its rendered ``map_index_template``)."""
        self.asset_events: list[dict[str, Any]] | None = None
        """The asset events the try records if it succeeds (``SetAssetEvents``), written with the outcome."""
        self.target = target
        self.try_row_id = try_row_id
        self.try_number = try_number
        self.limits = limits
        self.say = say
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.kill_grace_period = kill_grace_period
        self.stop_requested = stop_requested
        self._outage = False
        """The last heartbeat failed (logged once per outage)."""
        self.self_fence_after = self_fence_after
        """Seconds without a successful heartbeat after which the supervisor kills its own task (None: never):
        a scheduler elsewhere may by then judge the try dead and retry it."""
        self._last_beat_ok = time.monotonic()
        self.pid = -1
        self._started = 0.0
        self._usage_before = ChildUsage(0.0, 0)
        self.tree = ProcessTree(-1)

    def adopt(self, pid: int, usage_before: ChildUsage, started: float) -> None:
        """Watch task process ``pid``, forked (by :func:`fork_child`) at monotonic time ``started``, when this
        process's children had used ``usage_before`` (:meth:`ChildUsage.now` just before the fork)."""
        self._usage_before = usage_before
        self.pid = pid
        self._started = started
        self.tree = ProcessTree(pid)

    def _answer(self, sock: socket.socket, line: bytes) -> TaskDone | None:
        try:
            message = decode_request(line)
        except ProtocolError as exc:
            if is_notification(line):  # nobody waits for an answer: the fields are not recorded
                log.warning("task_try %d: rendered fields not recorded: %s", self.try_row_id, exc)
            else:
                self._send(sock, Error(message=str(exc)))
            return None
        if isinstance(message, TaskDone):
            self.rendered_map_index = message.rendered_map_index
            self._send(sock, Ack())
            return message
        if isinstance(message, SetRenderedFields):  # a notification: kept, written with the outcome; no answer
            self.rendered_fields = dict(message.fields)
            return None
        if isinstance(message, SetAssetEvents):  # written with the success, in the outcome's transaction
            self.asset_events = list(message.events)
            self._send(sock, Ack())
            return None
        self._send(sock, self.store.answer(self.target, message))
        return None

    @staticmethod
    def _send(sock: socket.socket, response: Ack | Error | object) -> None:
        try:
            sock.sendall(encode(response))  # type: ignore[arg-type]
        except OSError:  # the task process is gone; its exit tells the rest
            pass

    def _heartbeat(self) -> tuple[str, int] | None:
        """Heartbeat; return ``(state, try_number)`` of the task instance if it no longer runs this try."""
        try:
            changed = self.store.heartbeat(self.target, self.try_row_id, self.try_number)
            self._last_beat_ok = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a DB hiccup must not kill the try; the next beat retries
            if not self._outage:
                log.warning(
                    "heartbeat of task_try %d failed (retrying every beat): %s",
                    self.try_row_id,
                    one_line(exc),
                )
                self.say("heartbeat failed: the database is unreachable; the task goes on", "WARNING")
            self._outage = True
            return None
        if self._outage:
            self._outage = False
            log.warning("heartbeat of task_try %d works again", self.try_row_id)
        return changed

    def wait(self, sock: socket.socket) -> WatchResult:
        """Serve and watch until the task process exits; reap it and return how the try ended.

        One ``select`` per wake on the pidfd and the channel; between wakes,
        in order: sample the tree and check the limits (:meth:`_check_limits`),
        escalate a kill whose grace period is over (:meth:`_escalate`), and
        heartbeat, noticing a state set from outside (:meth:`_check_heartbeat`).
        The ending is classified by :func:`classify`, a pure function.
        """
        pidfd = os.pidfd_open(self.pid)
        sock.setblocking(True)
        buffer = LineBuffer()
        done: TaskDone | None = None
        kill = _Kill()
        now = time.monotonic()
        # The first sample one interval in (like every later one): a task that ends sooner never pays
        # for a process-tree walk; its peak RSS and CPU come from rusage at the end.
        next_sample = now + self.poll_interval
        next_heartbeat = now + self.heartbeat_interval
        timeout_at = now + self.limits.execution_timeout if self.limits.execution_timeout else None
        sock_open = True
        try:
            while True:
                wait = max(0.0, min(next_sample, next_heartbeat, kill.escalate_at or next_sample) - time.monotonic())
                watched: list[int] = [pidfd, sock.fileno()] if sock_open else [pidfd]
                output = self.output
                outputs = output.polled_fds() if output is not None else []
                readable, _, _ = select.select(watched + outputs, [], [], wait)
                if output is not None:
                    for fd in outputs:
                        if fd in readable:
                            output.read_pipe(fd)
                if sock_open and sock.fileno() in readable:
                    data = sock.recv(1 << 16)
                    if not data:
                        sock_open = False
                    for line in buffer.feed(data):
                        done = self._answer(sock, line) or done
                if pidfd in readable:
                    break
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + self.poll_interval
                    self._check_limits(kill, now, timeout_at)
                self._escalate(kill, now)
                if now >= next_heartbeat:
                    next_heartbeat = now + self.heartbeat_interval
                    self._check_heartbeat(kill, now)
        finally:
            os.close(pidfd)
        done = self._drain(sock, buffer) or done
        _, status = os.waitpid(self.pid, 0)
        usage_after = ChildUsage.now()
        leftovers = None
        if self.containment is not None:  # whatever the task left running goes with it, escaped or not
            leftovers = self.containment.kill_all()
            if leftovers.left:
                self.say(
                    f"{leftovers.left} process(es) of the try were still running after the task process ended "
                    f"({self.containment.kind} containment); killed {leftovers.killed}",
                    "WARNING" if leftovers.killed == leftovers.left else "ERROR",
                )
        else:
            try:  # whatever the task left running in its group goes with it
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        sock.close()
        exact_peak = self.containment.memory_peak() if self.containment is not None else None
        if self.containment is not None:
            self.containment.remove()
        peak, cpu = self.tree.final_usage(self._usage_before, usage_after, exact_peak)
        return classify(
            os.waitstatus_to_exitcode(status), done, kill, peak_rss_bytes=peak, cpu_seconds=cpu, leftovers=leftovers
        )

    def _signal_try(self, signum: int) -> None:
        """Send ``signum`` to the task's tree and to every other process of the try (its cgroup, its marker)."""
        self.tree.signal(signum)
        if self.containment is not None:
            self.containment.signal(signum)

    def _sample(self) -> TreeSample:
        """Sample the try's CPU and memory; the memory figure from its cgroup where it accounts memory.

        With such a cgroup, the processes sampled (for CPU) are the cgroup's (and any descendant it
        missed), and their RSS is not read; otherwise the process tree is walked and its RSS summed.
        """
        containment = self.containment
        in_use = containment.memory_in_use() if containment is not None else None
        if containment is None or in_use is None:
            return self.tree.sample()
        sample = self.tree.sample(containment.pids(), rss=False)
        return replace(sample, rss_bytes=in_use, source="try's cgroup memory")

    def _check_limits(self, kill: _Kill, now: float, timeout_at: float | None) -> None:
        """Sample the tree; start a kill for ``memory_limit``, ``execution_timeout`` or a supervisor stop."""
        sample = self._sample()
        if kill.reason is not None:
            return
        if self.limits.memory_exceeded(sample):
            kill.error = self.limits.memory_message(sample)
            self.say(kill.error, "ERROR")
            self._signal_try(signal.SIGKILL)
            kill.reason = EndReason.MEMORY_LIMIT_EXCEEDED
        elif timeout_at is not None and now >= timeout_at:
            self._terminate(
                kill,
                now,
                EndReason.TIMEOUT,
                f"execution_timeout of {self.limits.execution_timeout:g} s exceeded",
                "ERROR",
            )
        elif self.stop_requested():
            self._terminate(kill, now, EndReason.KILLED, "the supervisor was told to stop (SIGTERM)", "WARNING")

    def _terminate(self, kill: _Kill, now: float, reason: EndReason, error: str, level: str) -> None:
        """SIGTERM the tree now, SIGKILL after ``kill_grace_period`` (see :meth:`_escalate`)."""
        kill.reason, kill.error, kill.escalate_at = reason, error, now + self.kill_grace_period
        how = (
            "stopping the task (SIGTERM, SIGKILL in"
            if reason is EndReason.EXTERNALLY_SET
            else "sending SIGTERM to the task's processes (SIGKILL in"
        )
        self.say(f"{error}; {how} {self.kill_grace_period:g} s)", level)
        self._signal_try(signal.SIGTERM)

    def _escalate(self, kill: _Kill, now: float) -> None:
        """SIGKILL the tree once a SIGTERM's grace period is over."""
        if kill.escalate_at is not None and now >= kill.escalate_at:
            self.say("the task's processes outlived the grace period; sending SIGKILL", "WARNING")
            self._signal_try(signal.SIGKILL)
            kill.escalate_at = None

    def _check_heartbeat(self, kill: _Kill, now: float) -> None:
        """Heartbeat; if the task instance no longer runs this try (set from outside), stop the task."""
        changed = self._heartbeat()
        silent = now - self._last_beat_ok
        if self.self_fence_after is not None and silent > self.self_fence_after and kill.reason is None:
            kill.reason = EndReason.ZOMBIE
            kill.error = (
                f"no heartbeat reached the database for {silent:.0f} s: stopped the task, so that a "
                f"scheduler that judges it dead cannot retry it beside this one"
            )
            self.say(f"{kill.error}; sending SIGKILL", "ERROR")
            self._signal_try(signal.SIGKILL)
            return
        if changed is None or kill.reason is not None:
            return
        kill.external_state = changed[0]
        also = f" (try {changed[1]})" if changed[1] != self.try_number else ""
        self._terminate(
            kill,
            now,
            EndReason.EXTERNALLY_SET,
            f"task instance was set to {kill.external_state}{also} from outside ({_who(kill.external_state)})",
            "WARNING",
        )

    def _drain(self, sock: socket.socket, buffer: LineBuffer) -> TaskDone | None:
        """Serve what the task sent just before it exited (non-blocking)."""
        done = None
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    break
                for line in buffer.feed(data):
                    done = self._answer(sock, line) or done
        except (BlockingIOError, OSError, ProtocolError):
            pass
        return done
