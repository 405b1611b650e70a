"""Parse children: import DAG files in forked processes, each within a time limit, and read back their DAGs.

One file, one child (:func:`_start_child`): the child imports the file,
serializes its DAGs (``serialize_dag``, then ``check_schedule``), writes
``{"dags", "dag_errors", "warnings"}`` — or ``{"error"}`` when the file itself
failed — as JSON to a pipe, and leaves with ``os._exit``: it never touches the
parent's database connections. A child that overruns its deadline is killed
(SIGKILL) and the file gets the import error ``timed out after 30.0 s
importing <file>``; one that closes its pipe without a JSON result gets ``the
process importing <file> died (exit code 3) without a result``.

:class:`ParseBatch` runs several children at once, non-blocking, for the
DAG processor (:mod:`~headrace.dagfiles.processor`), which stores each
:class:`ParseResult`; :func:`parse_files` is the blocking form.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from headrace.authoring.dag_warnings import dag_warnings
from headrace.dagfiles.loader import load_dags
from headrace.dagfiles.serialization import check_schedule, serialize_dag
from headrace.supervisor.fencing import die_with_parent

_MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024
"""Upper bound for closing a parse child's inherited descriptors (``close_range`` makes it cheap)."""


@dataclass(frozen=True)
class ParseError:
    """Why a file did not import: one-line ``message``, the ``lineno`` in that file (if known)."""

    message: str
    lineno: int | None
    stacktrace: str | None = None
    dag_id: str | None = None
    """The DAG it is about, when one DAG of the file failed (its schedule) and the others were stored."""


@dataclass(frozen=True)
class ParseResult:
    """The outcome of importing one DAG file in a child process."""

    fileloc: str
    dags: list[dict[str, Any]] = field(default_factory=list)
    """``serialize_dag`` output of each DAG the file defines."""
    error: ParseError | None = None
    seconds: float = 0.0
    """Wall time of the parse, from fork to result."""
    dag_errors: list[ParseError] = field(default_factory=list)
    """DAGs of the file that could not be serialized or scheduled (each with its ``dag_id``)."""
    warnings: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """``{dag_id: [{"kind", "message"}, ...]}`` of the DAGs in ``dags`` (see ``dag_warnings``)."""

    @property
    def ok(self) -> bool:
        """The file imported and every DAG in it was stored."""
        return self.error is None and not self.dag_errors


# --- the child ----------------------------------------------------------------


def _error_from_exception(exc: BaseException, fileloc: str) -> ParseError:
    """One-line message and the line in ``fileloc`` where ``exc`` arose."""
    lineno: int | None = None
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        lineno = exc.lineno
    elif getattr(exc, "fileloc", None) == fileloc and getattr(exc, "lineno", None):
        lineno = int(getattr(exc, "lineno"))  # noqa: B009 - not every exception has it (checked above)
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if os.path.realpath(frame.filename) == fileloc:
                lineno = frame.lineno
    text = str(exc).strip().splitlines()
    message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    stack = "".join(traceback.format_exception(exc))
    return ParseError(message=message, lineno=lineno, stacktrace=stack)


def _serialize_dags(fileloc: str, catchup_default: bool) -> dict[str, Any]:
    """Import ``fileloc``; ``{"dags", "dag_errors", "warnings"}`` of its DAGs (see ``ParseResult``)."""
    payload: dict[str, Any] = {"dags": [], "dag_errors": [], "warnings": {}}
    now = datetime.now(UTC)
    for dag in load_dags(fileloc):
        try:
            data = serialize_dag(dag, catchup_default=catchup_default)
            check_schedule(dag, data, now)
            warnings = [asdict(w) for w in dag_warnings(dag)]
        except Exception as exc:  # noqa: BLE001 - this DAG's import error; the file's other DAGs are stored
            err = _error_from_exception(exc, fileloc)
            payload["dag_errors"].append(
                {
                    "dag_id": dag.dag_id,
                    "message": err.message,
                    "lineno": err.lineno or dag.lineno,
                    "stacktrace": err.stacktrace,
                }
            )
            continue
        payload["dags"].append(data)
        payload["warnings"][dag.dag_id] = warnings
    return payload


def _child_main(fileloc: str, write_fd: int, catchup_default: bool = False) -> None:
    """Import ``fileloc``, write ``{"dags": [...], ...}`` or ``{"error": {...}}`` as JSON, exit. Never returns."""
    code = 0
    try:
        try:
            payload: dict[str, Any] = _serialize_dags(fileloc, catchup_default)
        except BaseException as exc:  # noqa: BLE001 - user code: anything at all, SystemExit included
            err = _error_from_exception(exc, fileloc)
            payload = {"error": {"message": err.message, "lineno": err.lineno, "stacktrace": err.stacktrace}}
        data = json.dumps(payload, default=str).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:  # noqa: BLE001 — nothing may escape a forked child
        code = 1
    finally:
        os._exit(code)


@dataclass
class _Child:
    fileloc: str
    pid: int
    fd: int
    """Read end of the child's pipe (non-blocking)."""
    started: float
    """``time.monotonic()`` at fork."""
    deadline: float
    """``time.monotonic()`` at which the child is killed."""
    chunks: list[bytes] = field(default_factory=list)


def _start_child(fileloc: str, timeout: float, catchup_default: bool = False) -> _Child:
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        die_with_parent(parent)  # a SIGKILLed scheduler takes its parse children with it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(-1)  # the scheduler's self-pipe belongs to the scheduler
        except ValueError:
            pass
        os.close(read_fd)
        # Nothing of the parent's but the pipe: an inherited fork-server stdin (or a socket) held open by a
        # hung import would keep the other end from seeing EOF. The child never uses those descriptors.
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, _MAX_FD)
        _child_main(fileloc, write_fd, catchup_default)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return _Child(fileloc, pid, read_fd, started, started + timeout)


def _read_available(child: _Child) -> bool:
    """Read what ``child`` has written so far, without blocking; True once its pipe is at end of file."""
    while True:
        try:
            data = os.read(child.fd, 1 << 16)
        except BlockingIOError:
            return False
        if not data:
            return True
        child.chunks.append(data)


def _finish_child(child: _Child, timeout: float, *, timed_out: bool) -> ParseResult:
    """Reap ``child`` (killing it first if it overran) and decode what it wrote.

    A child whose pipe is at end of file has written its result and is exiting;
    should it still be alive (its code closed the pipe itself), it is killed, so
    reaping never waits on user code.
    """
    os.close(child.fd)
    pid, status = (0, 0) if timed_out else os.waitpid(child.pid, os.WNOHANG)
    if pid == 0:  # overdue, exiting, or alive without its pipe (SIGKILL leaves an exit under way as it is)
        _kill(child.pid)
        _, status = os.waitpid(child.pid, 0)
    seconds = time.monotonic() - child.started
    if timed_out:
        err = ParseError(f"timed out after {timeout:.1f} s importing {child.fileloc}", None)
        return ParseResult(child.fileloc, error=err, seconds=seconds)
    try:
        payload = json.loads(b"".join(child.chunks))
    except ValueError:
        how = (
            f"signal {-os.waitstatus_to_exitcode(status)}"
            if os.WIFSIGNALED(status)
            else f"exit code {os.waitstatus_to_exitcode(status)}"
        )
        err = ParseError(f"the process importing {child.fileloc} died ({how}) without a result", None)
        return ParseResult(child.fileloc, error=err, seconds=seconds)
    if "error" in payload:
        e = payload["error"]
        return ParseResult(child.fileloc, error=ParseError(e["message"], e["lineno"], e["stacktrace"]), seconds=seconds)
    dag_errors = [
        ParseError(e["message"], e["lineno"], e["stacktrace"], dag_id=e["dag_id"])
        for e in payload.get("dag_errors", ())
    ]
    return ParseResult(
        child.fileloc,
        dags=list(payload["dags"]),
        seconds=seconds,
        dag_errors=dag_errors,
        warnings=dict(payload.get("warnings", {})),
    )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ParseBatch:
    """Files being parsed in children: at most ``concurrency`` at once, each within ``timeout`` s.

    Nothing here blocks except :meth:`poll` with a positive ``wait``. Children
    beyond ``concurrency`` start as earlier ones finish, from :meth:`poll`.
    """

    def __init__(
        self, filelocs: Sequence[str], *, timeout: float, concurrency: int, catchup_default: bool = False
    ) -> None:
        self.timeout = timeout
        self.catchup_default = catchup_default
        """``catchup`` of the DAGs that do not set it (``scheduler.catchup_by_default``)."""
        self.concurrency = max(1, concurrency)
        self.waiting = list(filelocs)
        """Files whose child has not started yet, in order."""
        self.running: dict[int, _Child] = {}
        """Running children by the read end of their pipe."""
        self._start_waiting()

    @property
    def done(self) -> bool:
        """Every file has its result."""
        return not self.waiting and not self.running

    def fds(self) -> list[int]:
        """Pipes of the running children: one turns readable when its child writes or ends."""
        return list(self.running)

    def next_deadline(self) -> float | None:
        """``time.monotonic()`` at which the next running child is killed (None: none runs)."""
        return min((c.deadline for c in self.running.values()), default=None)

    def poll(self, wait: float = 0.0) -> list[ParseResult]:
        """Read the pipes, reap finished children, kill overdue ones, start waiting files.

        Waits up to ``wait`` s (0: not at all) for a pipe to turn readable;
        returns the results of the files that finished, in the order they did.
        """
        results: list[ParseResult] = []
        if self.running:
            readable, _, _ = select.select(list(self.running), [], [], max(0.0, wait))
            for fd in readable:
                if _read_available(self.running[fd]):
                    results.append(_finish_child(self.running.pop(fd), self.timeout, timed_out=False))
            now = time.monotonic()
            for fd in [fd for fd, c in self.running.items() if now >= c.deadline]:
                child = self.running.pop(fd)
                if _read_available(child):  # finished just in time
                    results.append(_finish_child(child, self.timeout, timed_out=False))
                else:
                    results.append(_finish_child(child, self.timeout, timed_out=True))
        self._start_waiting()
        return results

    def kill(self) -> None:
        """Kill and reap the running children; forget the waiting files."""
        self.waiting.clear()
        for child in self.running.values():
            _kill(child.pid)
            os.close(child.fd)
            os.waitpid(child.pid, 0)
        self.running.clear()

    def add(self, filelocs: Iterable[str]) -> None:
        """Parse ``filelocs`` too (those not waiting or running already), as slots free up."""
        busy = set(self.waiting) | {c.fileloc for c in self.running.values()}
        self.waiting += [f for f in dict.fromkeys(filelocs) if f not in busy]
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self.waiting and len(self.running) < self.concurrency:
            child = _start_child(self.waiting.pop(0), self.timeout, self.catchup_default)
            self.running[child.fd] = child


def parse_files(filelocs: Sequence[str], *, timeout: float, concurrency: int) -> list[ParseResult]:
    """Parse each file in a forked child, at most ``concurrency`` at once, each within ``timeout`` s.

    Blocks until all are done. Returns one ``ParseResult`` per file, in the order they finished.
    """
    batch = ParseBatch(filelocs, timeout=timeout, concurrency=concurrency)
    results: list[ParseResult] = []
    while not batch.done:
        deadline = batch.next_deadline()
        results += batch.poll(0.0 if deadline is None else deadline - time.monotonic())
    return results


__all__ = ["ParseBatch", "ParseError", "ParseResult", "parse_files"]
