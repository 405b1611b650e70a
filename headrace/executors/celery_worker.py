"""``headrace celery worker``: a Celery worker whose slots are threads and whose tries are forked on demand.

A plain ``celery worker -c 16`` pre-forks 16 pool processes that sit idle
between tasks. This worker runs Celery's ``threads`` pool instead: a slot is a
consumer thread that only waits, and each try is started through the same fork
server and supervisor as the local executor
(:class:`~headrace.executors.local.LocalExecutor` and
:mod:`~headrace.executors.forkserver`), so the supervisor records the true
host, pid and process start time, heartbeats, and enforces ``memory_limit``
and ``execution_timeout`` — a try looks the same in the DB whichever executor
ran it. The fork server is started with the first try and exits after
``executor.forkserver_idle_timeout`` s without one: an idle worker is one
process, two while its fork server lingers.

The task body (:data:`~headrace.executors.celery_app.TASK_NAME`) hands the
try to the fork server and waits for its supervisor to end, so that with
``celery.task_acks_late`` the message is acknowledged only once the try's
outcome is recorded. A message for a try already running on this worker is
dropped at once, with a log line; one whose try is running elsewhere, or is no
longer queued, is dropped by the supervisor's claim (exit code 2), also with a
log line — a duplicate delivery never marks a try failed.

A message whose try this worker could not start (``ExecutorError``: no open
slot, a fork server that cannot be started or reached) is rejected with
``requeue`` after :data:`REQUEUE_DELAY` s — Celery would otherwise acknowledge
the failed task and the message would be gone, leaving the try ``queued``
until ``scheduler.task_queued_timeout``. If the fork server's events cannot
be read, a consumer thread is released only once its try's supervisor is
known to have ended; a try whose supervisor was not reported started is
forgotten and its message requeued the same way (should that supervisor have
started after all, its claim and the redelivery's decide which one runs it).

``celery.worker_memory_limit``: while the RSS of the worker's tries (each
supervisor's process tree) adds up to more than it, the worker stops
consuming its queues (Celery's ``cancel_consumer``, sent to itself) and takes
them up again once the sum is back under the limit; ``headrace celery status``
shows it.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
from celery import Celery
from celery.exceptions import Reject
from celery.utils.nodenames import default_nodename, host_format
from celery.worker.control import inspect_command

from headrace.config import Settings, memory_size
from headrace.exceptions import ExecutorError
from headrace.executors.celery_app import TASK_NAME, make_app
from headrace.executors.local import LocalExecutor
from headrace.supervisor.request import TryRequest

log = logging.getLogger("headrace.celery.worker")

EXIT_CLAIM_LOST = 2
"""The supervisor's exit code when the try was not queued for it (:data:`headrace.supervisor.supervise.EXIT_CLAIM_LOST`;
not imported from there: the worker process does not load the supervisor, its fork server does)."""

MEMORY_CHECK_INTERVAL = 1.0
"""Seconds between two sums of the worker's tries' RSS (with ``celery.worker_memory_limit``)."""

REQUEUE_DELAY = 1.0
"""Seconds a consumer thread waits before it rejects, for requeue, a message whose try it could not start (a
worker whose fork server cannot start must not spin on the message)."""

STATUS_COMMAND = "headrace_status"
"""The remote-control (inspect) command ``headrace celery status`` sends to every worker."""


class AlreadyRunning(Exception):
    """Raised by :meth:`TryRunner.run` for a try this worker is already running (a duplicate delivery)."""


@dataclass
class _Waiting:
    request: TryRequest
    done: threading.Event = field(default_factory=threading.Event)
    exit_code: int | None = None
    requeue: bool = False
    """Released without knowing that the try's supervisor started: the message goes back to the queue."""


@dataclass(frozen=True)
class RunningTry:
    """A try this worker runs, as ``celery status`` shows it."""

    request: TryRequest
    supervisor_pid: int | None
    """The supervisor's pid (None until the fork server reported it started)."""
    rss: int
    """RSS of the supervisor's process tree, bytes (0 before it started)."""


def tree_rss(pid: int) -> int:
    """RSS bytes of process ``pid`` and its descendants (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


class TryRunner:
    """Runs tries for the worker's consumer threads through one on-demand fork server.

    :meth:`run` blocks its thread until the try's supervisor ended. One pump
    thread reads the fork server's events while a try runs or the server
    lives, and wakes the threads whose supervisor ended.
    """

    def __init__(self, settings: Settings, slots: int) -> None:
        self._executor = LocalExecutor(settings)
        self._executor.parallelism = slots
        self.slots = slots
        self._lock = threading.Lock()
        self._waiting: dict[tuple[int, int], _Waiting] = {}
        self._unsure: set[tuple[int, int]] = set()
        """Tries in flight when reading the fork server's events failed: an end may have gone unread."""
        self._pump: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def run(self, request: TryRequest) -> int | None:
        """Run ``request``'s try and return its supervisor's exit code (None: it ended, its code unread).

        Raises ``AlreadyRunning`` when this worker runs that try already; ``ExecutorError`` when no slot is
        open, the fork server cannot be started or reached, or the worker lost track of the try before its
        supervisor was reported started (nothing known to run: the message should be requeued).
        """
        with self._lock:
            if request.key in self._waiting:
                raise AlreadyRunning(request.key)
            waiting = self._waiting[request.key] = _Waiting(request)
            try:
                self._executor.queue(request)
            except BaseException:
                del self._waiting[request.key]
                raise
            if self._pump is None:
                self._pump = threading.Thread(target=self._pump_events, name="headrace-forkserver-events", daemon=True)
                self._pump.start()
        self._wake()
        waiting.done.wait()
        if waiting.requeue:
            raise ExecutorError(
                "reading the fork server's events failed before the try's supervisor was reported started",
                key=request.key,
            )
        return waiting.exit_code

    def running(self) -> list[RunningTry]:
        """The tries in flight, with their supervisor's pid and process tree RSS."""
        with self._lock:
            flights = [(w.request, self._executor.supervisor(*w.request.key)) for w in self._waiting.values()]
        return [
            RunningTry(request, identity.pid if identity else None, tree_rss(identity.pid) if identity else 0)
            for request, identity in flights
        ]

    def close(self) -> None:
        """Let the fork server go (its supervisors are detached and finish their tries)."""
        with self._lock:
            self._executor.terminate()
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # a wake is pending already
            pass

    def _pump_events(self) -> None:
        while True:
            with self._lock:
                fd = self._executor.fileno()
                if not self._waiting and fd is None:
                    self._pump = None
                    return
            try:
                select.select([self._wake_r] + ([fd] if fd is not None else []), [], [], 1.0)
            except (OSError, ValueError):  # the server's pipe was closed meanwhile (it was restarted)
                pass
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            with self._lock:
                try:
                    events = self._executor.sync()
                except Exception:  # noqa: BLE001 - the waiters are decided below, none may hang
                    log.exception("reading the fork server's events failed")
                    events = []
                    self._unsure.update(self._waiting)
                for event in events:
                    self._unsure.discard((event.ti_id, event.try_number))
                    done = self._waiting.pop((event.ti_id, event.try_number), None)
                    if done is not None:
                        done.exit_code = event.exit_code
                        done.done.set()
                self._settle_unsure()

    def _settle_unsure(self) -> None:
        """After a failed read of events (lock held): release a try whose supervisor is known to have ended (exit
        code unknown), and one whose supervisor was never reported started for requeue; wait on for the rest."""
        for key in list(self._unsure):
            waiting = self._waiting.get(key)
            identity = self._executor.supervisor(*key)
            if waiting is None or identity is None or not identity.is_alive():
                self._unsure.discard(key)
                self._executor.forget(*key)
                if waiting is not None:
                    del self._waiting[key]
                    waiting.requeue = identity is None
                    waiting.done.set()


def run_try_message(runner: TryRunner, payload: str) -> str:
    """The body of the Celery task: run the try ``payload`` names (a TryRequest as JSON); what became of it.

    Returns ``recorded`` (the supervisor ran the try and recorded it), ``claim lost`` or ``duplicate``
    (nothing ran; logged), or ``supervisor exit <code>`` (it failed; the scheduler's zombie check ends the
    try). Raises Celery's ``Reject(requeue=True)`` after :data:`REQUEUE_DELAY` s when the try could not be
    started here (``ExecutorError``, logged): the message goes back to its queue for this or another worker.
    A malformed payload raises ``ValueError`` (the message is acknowledged: no worker could run it).
    """
    request = TryRequest.from_json(payload)
    name = f"try {request.try_number} of {request.dag_id}.{request.task_id} ({request.run_id})"
    try:
        code = runner.run(request)
    except AlreadyRunning:
        log.warning("%s is already running on this worker: dropping a second delivery of its message", name)
        return "duplicate"
    except ExecutorError as exc:
        log.error("%s could not be started on this worker (%s): its message goes back to the queue", name, exc)
        time.sleep(REQUEUE_DELAY)
        raise Reject(str(exc), requeue=True) from exc
    if code == 0:
        return "recorded"
    if code == EXIT_CLAIM_LOST:
        log.warning("%s was not queued for this delivery (claimed elsewhere or no longer queued): dropped", name)
        return "claim lost"
    log.error("%s: its supervisor ended with exit code %s before recording an outcome", name, code)
    return f"supervisor exit {code}"


class MemoryGate:
    """Stops the worker consuming while its tries' RSS adds up to more than ``limit`` bytes (a thread)."""

    def __init__(self, runner: TryRunner, limit: int, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.runner = runner
        self.limit = limit
        self.paused = False
        self.rss = 0
        """The last sum taken, bytes."""
        self._pause, self._resume = pause, resume
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="headrace-memory-gate", daemon=True)

    def start(self) -> None:
        """Start checking every :data:`MEMORY_CHECK_INTERVAL` s."""
        self._thread.start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()

    def check(self) -> None:
        """Sum the tries' RSS; pause or resume consuming when it crossed the limit."""
        self.rss = sum(t.rss for t in self.runner.running())
        if self.rss > self.limit and not self.paused:
            log.warning(
                "tries' RSS %d bytes is over celery.worker_memory_limit %d: taking no new try", self.rss, self.limit
            )
            self._pause()
            self.paused = True
        elif self.rss <= self.limit and self.paused:
            log.warning("tries' RSS %d bytes is back under celery.worker_memory_limit: taking tries again", self.rss)
            self._resume()
            self.paused = False

    def _watch(self) -> None:
        while not self._stop.wait(MEMORY_CHECK_INTERVAL):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a failed check must not end the gate
                log.exception("worker memory check failed")


def status(runner: TryRunner, queues: list[str], consuming: list[str], gate: MemoryGate | None) -> dict[str, Any]:
    """What :data:`STATUS_COMMAND` answers: slots, queues (configured, and consumed now), memory and the tries
    running (JSON types)."""
    tries = runner.running()
    return {
        "concurrency": runner.slots,
        "queues": queues,
        "consuming": consuming,
        "in_use": len(tries),
        "rss": sum(t.rss for t in tries),
        "memory_limit": gate.limit if gate is not None else None,
        "paused": gate.paused if gate is not None else False,
        "pid": os.getpid(),
        "tries": [
            {
                "ti_id": t.request.ti_id,
                "dag_id": t.request.dag_id,
                "task_id": t.request.task_id,
                "run_id": t.request.run_id,
                "map_index": t.request.map_index,
                "try_number": t.request.try_number,
                "supervisor_pid": t.supervisor_pid,
                "rss": t.rss,
            }
            for t in tries
        ],
    }


def worker_app(settings: Settings, runner: TryRunner) -> Celery:
    """The Celery app of a worker: :func:`~headrace.executors.celery_app.make_app` with the try task registered."""
    app = make_app(settings)

    def run_try(payload: str) -> str:
        return run_try_message(runner, payload)

    app.task(name=TASK_NAME, ignore_result=True)(run_try)
    return app


def run_worker(
    settings: Settings,
    *,
    queues: list[str] | None = None,
    concurrency: int | None = None,
    hostname: str | None = None,
) -> int:
    """Run a worker until SIGTERM (warm shutdown: running tries finish) or SIGINT; return its exit code.

    ``queues`` default to ``[operators.default_queue]``, ``concurrency`` to ``celery.worker_concurrency``,
    ``hostname`` (Celery's node name) to ``headrace@<host>``; as with ``celery worker -n``, ``%h``, ``%n`` and
    ``%d`` are expanded (host name, its first label, its domain) and a name without ``@`` gets ``celery@``.
    """
    concurrency = concurrency or settings.get_int("celery", "worker_concurrency")
    queues = queues or [settings.get_str("operators", "default_queue")]
    node = host_format(default_nodename(hostname or f"headrace@{socket.gethostname()}"))
    runner = TryRunner(settings, concurrency)
    app = worker_app(settings, runner)
    gate: MemoryGate | None = None
    limit = memory_size(settings.get_str("celery", "worker_memory_limit"))
    if limit is not None:

        def pause() -> None:
            for queue in queues:
                app.control.cancel_consumer(queue, destination=[node])

        def resume() -> None:
            for queue in queues:
                app.control.add_consumer(queue, destination=[node])

        gate = MemoryGate(runner, limit, pause, resume)

    def headrace_status(state: Any) -> dict[str, Any]:
        consumer = state.consumer.task_consumer
        consuming = sorted(q.name for q in consumer.queues) if consumer is not None else []
        return status(runner, queues, consuming, gate)

    inspect_command(name=STATUS_COMMAND)(headrace_status)
    worker = app.Worker(
        hostname=node,
        pool_cls="threads",
        concurrency=concurrency,
        queues=queues,
        loglevel=settings.get_str("logging", "logging_level"),
        without_mingle=True,
        without_gossip=True,
    )
    if gate is not None:
        gate.start()
    try:
        worker.start()
    finally:
        if gate is not None:
            gate.stop()
        runner.close()
    return int(worker.exitcode or 0)


__all__ = [
    "REQUEUE_DELAY",
    "STATUS_COMMAND",
    "AlreadyRunning",
    "MemoryGate",
    "RunningTry",
    "TryRunner",
    "run_try_message",
    "run_worker",
    "status",
    "tree_rss",
    "worker_app",
]
