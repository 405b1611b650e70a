"""LocalExecutor: up to ``core.parallelism`` tries at once on this machine, forked from a fork server.

No pool of idle workers: one fork server (:mod:`headrace.executors.forkserver`)
is started on the first ``queue()`` and forks one detached supervisor per
try; it exits by itself once idle for ``executor.forkserver_idle_timeout``
seconds and is started again on demand. The executor writes requests to its
stdin and reads its events from its stdout without blocking; ``fileno()`` is
that stdout, so a scheduler selecting on it wakes the moment a try ends.

If the fork server dies while supervisors run (they are detached, so they
carry on), the executor keeps watching those supervisors by their process
identity and reports each as ``exited`` (exit code None) once it is gone.
Requests the server never confirmed with a ``started`` event are sent again to
a new server; if one did start after all, the second supervisor loses the
claim and runs nothing.

The fork server preloads DAG files (``executor.preload_dag_files``). When
importing one started a thread, the server reports ``no_preload`` for it and
exits (it must not fork once multi-threaded); the executor remembers the file
and starts every later server with ``--no-preload <file>``, so that file's
tries import it themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from headrace.config import Settings
from headrace.exceptions import ExecutorError
from headrace.executors.base import ExecutorEvent
from headrace.executors.sequential import child_environment
from headrace.supervisor.identity import ProcessIdentity, hostname
from headrace.supervisor.protocol import LineBuffer
from headrace.supervisor.request import TryRequest


@dataclass
class _InFlight:
    request: TryRequest
    supervisor: ProcessIdentity | None = None
    """Set by the ``started`` event."""
    server_pid: int | None = None
    """The fork server the request was sent to."""


class LocalExecutor:
    """Runs tries in supervisors forked from one lazily started fork server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.parallelism = settings.parallelism
        self._server: subprocess.Popen[bytes] | None = None
        self._lines = LineBuffer()
        self._in_flight: dict[tuple[int, int], _InFlight] = {}
        self.no_preload: set[str] = set()
        """DAG files the fork server must not import (importing them started a thread)."""

    # --- the fork server ---------------------------------------------------------

    @property
    def server_pid(self) -> int | None:
        """Pid of the running fork server, if any."""
        return self._server.pid if self._server is not None else None

    def _ensure_server(self) -> subprocess.Popen[bytes]:
        if self._server is None:
            command = [sys.executable, "-m", "headrace.executors.forkserver"]
            for fileloc in sorted(self.no_preload):
                command += ["--no-preload", fileloc]
            try:
                self._server = subprocess.Popen(
                    command,
                    env=child_environment(self.settings),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            except OSError as exc:  # no fork (memory, process limit), no pipe (descriptors)
                raise ExecutorError(f"cannot start the fork server: {exc}") from exc
            assert self._server.stdout is not None
            os.set_blocking(self._server.stdout.fileno(), False)
            self._lines = LineBuffer()
        return self._server

    def _send(self, request: TryRequest) -> None:
        for _attempt in range(2):
            server = self._ensure_server()
            assert server.stdin is not None
            try:
                server.stdin.write(request.to_json().encode() + b"\n")
                server.stdin.flush()
                self._in_flight[request.key].server_pid = server.pid
                return
            except BrokenPipeError:  # it just exited (idle timeout): start another
                self._server_gone()
        raise ExecutorError("cannot hand the try to the fork server: it keeps exiting", key=request.key)

    def _server_gone(self) -> None:
        """The server exited: reap it; resend what it never started."""
        server, self._server = self._server, None
        if server is not None:
            for pipe in (server.stdin, server.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except BrokenPipeError:
                    pass
            server.wait()

    # --- the Executor interface --------------------------------------------------

    def start(self) -> None:
        """Nothing yet: the fork server starts with the first try."""

    def open_slots(self) -> int:
        """``parallelism`` minus the tries whose supervisor has not been seen to end."""
        return max(0, self.parallelism - len(self._in_flight))

    def queue(self, request: TryRequest) -> None:
        """Send ``request`` to the fork server. Raises ``ExecutorError`` when no slot is open or the fork server
        cannot be started or reached (then the try is not in flight)."""
        if self.open_slots() <= 0:
            raise ExecutorError(f"no open slot (parallelism {self.parallelism})", key=request.key)
        self._in_flight[request.key] = _InFlight(request)
        try:
            self._send(request)
        except BaseException:
            del self._in_flight[request.key]
            raise

    def forget(self, ti_id: int, try_number: int) -> None:
        """Stop tracking the try (its slot is open again); events that still come for it are ignored."""
        self._in_flight.pop((ti_id, try_number), None)

    def has(self, ti_id: int, try_number: int) -> bool:
        """True while the try is in flight here (sent, starting or running)."""
        return (ti_id, try_number) in self._in_flight

    def supervisor(self, ti_id: int, try_number: int) -> ProcessIdentity | None:
        """The in-flight try's supervisor process, once the fork server reported it started (else None)."""
        flight = self._in_flight.get((ti_id, try_number))
        return flight.supervisor if flight is not None else None

    def sync(self) -> list[ExecutorEvent]:
        """Read the fork server's events without blocking; report supervisors that ended."""
        events: list[ExecutorEvent] = []
        server = self._server
        if server is not None:
            assert server.stdout is not None
            eof = False
            while True:
                try:
                    data = os.read(server.stdout.fileno(), 1 << 16)
                except BlockingIOError:
                    break
                if not data:
                    eof = True
                    break
                for line in self._lines.feed(data):
                    events.extend(self._on_event(json.loads(line)))
            if eof:
                self._server_gone()
                for flight in list(self._in_flight.values()):
                    if flight.supervisor is None:
                        self._send(flight.request)
        events.extend(self._check_orphans())
        return events

    def _on_event(self, event: dict[str, object]) -> list[ExecutorEvent]:
        if event["event"] == "no_preload":
            self.no_preload.add(str(event["fileloc"]))
            return []
        key = (int(event["ti_id"]), int(event["try_number"]))  # type: ignore[call-overload]
        flight = self._in_flight.get(key)
        if event["event"] == "started":
            if flight is not None and event.get("start_time") is not None:
                flight.supervisor = ProcessIdentity(hostname(), int(event["pid"]), float(event["start_time"]))  # type: ignore[call-overload, arg-type]
            return []
        if event["event"] == "exited" and flight is not None:
            del self._in_flight[key]
            return [ExecutorEvent(key[0], key[1], "exited", int(event["exit_code"]))]  # type: ignore[call-overload]
        return []

    def _check_orphans(self) -> list[ExecutorEvent]:
        """Supervisors started by a fork server that is gone: report those no longer alive."""
        events = []
        current = self.server_pid
        for key, flight in list(self._in_flight.items()):
            if flight.server_pid == current or flight.supervisor is None:
                continue
            if not flight.supervisor.is_alive():
                del self._in_flight[key]
                events.append(ExecutorEvent(key[0], key[1], "exited", None))
        return events

    def fileno(self) -> int | None:
        """The fork server's stdout (readable when an event or EOF waits), or None when it is not running."""
        if self._server is None or self._server.stdout is None:
            return None
        return self._server.stdout.fileno()

    def sync_due_in(self) -> None:
        """None: the fork server's events make ``fileno()`` readable."""
        return None

    def terminate(self) -> None:
        """Close the fork server's stdin so it exits; running supervisors carry on (they are detached)."""
        server = self._server
        if server is None:
            return
        try:
            if server.stdin is not None:
                server.stdin.close()
        except BrokenPipeError:
            pass
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        self._server_gone()
