"""``supervise``: run one try from claim to recorded outcome.

The life of a try, as the supervisor sees it:

1. **claim** — ``queued → running`` for exactly this ``try_number``; losing
   means another supervisor owns the try, and nothing runs;
2. **record** — insert the ``task_try`` row (host, supervisor pid and start
   time, log path), clear the TI's XComs;
3. **start** — fork the task process (:mod:`.task_process`), record its pid
   and start time;
4. **watch** — wait on the process (pidfd) and its channel (socket) at once,
   answering requests, sampling the process tree, heartbeating, enforcing
   ``memory_limit`` and ``execution_timeout``;
5. **finish** — reap it and write ``task_try`` and the TI's new state in one
   transaction; for outcomes decided here (memory, timeout, killed) run the
   task's failure/retry callbacks in a short child.

The supervisor never imports user code itself: limits and the retry policy
come from the serialized DAG stored with the run's DAG version.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from sqlalchemy import update

from headrace.authoring.context import RunInfo
from headrace.config import Settings
from headrace.dagfiles.serialization import SerializedTask
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersion, TaskInstance, TaskTry
from headrace.db.transitions import set_ti_state
from headrace.logs.files import append_line, open_try_log, try_log_path
from headrace.states import EndReason, TaskInstanceState
from headrace.supervisor import task_process
from headrace.supervisor.handlers import TryTarget, clear_xcoms
from headrace.supervisor.identity import ProcessIdentity, hostname
from headrace.supervisor.limits import Limits
from headrace.supervisor.outcome import next_state
from headrace.supervisor.request import TryRequest
from headrace.supervisor.watch import TaskWatch, WatchResult, run_child

log = logging.getLogger("headrace.supervisor")

TI = TaskInstanceState

EXIT_RECORDED = 0
"""``supervise`` ran the try (whatever its outcome) and recorded it."""
EXIT_CLAIM_LOST = 2
"""Another supervisor owns the try (or it is no longer queued): nothing ran."""
EXIT_ERROR = 1
"""The supervisor itself failed; it recorded what it could."""


class _Try:
    """What the supervisor learned when it claimed the try."""

    def __init__(
        self, request: TryRequest, target: TryTarget, start: task_process.TaskStart, policy: SerializedTask | None,
        log_path: Path, try_row_id: int,
    ) -> None:
        self.request = request
        self.target = target
        self.start = start
        self.policy = policy
        self.log_path = log_path
        self.try_row_id = try_row_id

    def say(self, message: str, level: str = "INFO") -> None:
        """Append a supervisor line to the try's log (never raises)."""
        try:
            append_line(self.log_path, "supervisor", message, level)
        except OSError as exc:
            log.warning("cannot write to %s: %s", self.log_path, exc)


def _policy(serialized: dict[str, object], task_id: str) -> SerializedTask | None:
    tasks = serialized.get("tasks")
    try:
        return SerializedTask.from_dict(tasks[task_id])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


def claim(settings: Settings, db: Database, request: TryRequest) -> _Try | None:
    """Claim the try and record its start; None if the claim was lost (nothing written)."""
    now = datetime.now(UTC)
    me = ProcessIdentity.of(os.getpid())
    log_path = try_log_path(
        settings.base_log_folder, request.dag_id, request.run_id, request.task_id, request.try_number
    )
    with db.session() as session:
        won = set_ti_state(
            session, request.ti_id, TI.QUEUED, TI.RUNNING, expected_try_number=request.try_number,
            start_date=now, end_date=None, end_reason=None, next_retry_at=None,
        )
        if not won:
            return None
        ti = session.get(TaskInstance, request.ti_id)
        assert ti is not None
        run = session.get(DagRun, ti.dag_run_id)
        assert run is not None
        version = session.get(DagVersion, run.dag_version_id)
        policy = _policy(version.serialized, ti.task_id) if version is not None else None
        row = TaskTry(
            task_instance_id=ti.id, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
            try_number=request.try_number, state=TI.RUNNING.value, hostname=me.host,
            supervisor_pid=me.pid, supervisor_start_time=me.start_time, start_date=now, heartbeat_at=now,
            log_path=str(log_path),
        )
        session.add(row)
        session.flush()
        logical = run.logical_date or run.queued_at
        info = RunInfo(
            dag_id=run.dag_id, run_id=run.run_id, logical_date=logical,
            data_interval_start=run.data_interval_start or logical, data_interval_end=run.data_interval_end or logical,
            run_type=run.run_type, conf=dict(run.conf or {}),
        )
        start = task_process.TaskStart(
            fileloc=request.fileloc, dag_id=ti.dag_id, task_id=ti.task_id, run=info,
            try_number=request.try_number, max_tries=ti.max_tries,
            xcom_max_size=int(settings.get("core", "xcom_max_size")),
        )
        target = TryTarget(ti_id=ti.id, dag_run_pk=run.id, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
        clear_xcoms(session, target)
        return _Try(request, target, start, policy, log_path, row.id)


def supervise(settings: Settings, db: Database, request: TryRequest) -> int:
    """Run the try named by ``request`` and record its outcome; return the exit code.

    ``EXIT_RECORDED`` (0) when the try ran and its outcome is in the DB,
    ``EXIT_CLAIM_LOST`` (2) when the try was not ``queued`` with this
    ``try_number`` (another supervisor has it; nothing ran), ``EXIT_ERROR`` (1)
    when the supervisor itself failed. SIGTERM to the supervisor stops the task
    tree gracefully and records reason ``killed``, signal 15. Must run in the
    main thread of its process (it installs a SIGTERM handler and forks).
    """
    current = claim(settings, db, request)
    if current is None:
        log.warning("try %d of %s.%s (%s) was not queued for us; not running it",
                    request.try_number, request.dag_id, request.task_id, request.run_id)
        return EXIT_CLAIM_LOST
    stop = _StopFlag()
    previous = signal.signal(signal.SIGTERM, stop.set)
    try:
        result = _run(settings, db, current, stop)
    except Exception as exc:  # noqa: BLE001 - record the failure, then report it by exit code
        log.exception("supervisor failed")
        current.say(f"supervisor error: {type(exc).__name__}: {exc}", "ERROR")
        result = WatchResult(
            outcome="failed", end_reason=EndReason.NOT_STARTED, error=f"supervisor error: {exc}",
        )
        _record(settings, db, current, result)
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)
    state = _record(settings, db, current, result)
    _outside_callbacks(settings, db, current, result, state)
    return EXIT_RECORDED


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def set(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True


def _run(settings: Settings, db: Database, current: _Try, stop: _StopFlag) -> WatchResult:
    """Fork the task process and watch it until it ends."""
    policy = current.policy
    limits = Limits(
        memory_limit=policy.memory_limit if policy else None,
        execution_timeout=policy.execution_timeout if policy else None,
    )
    # The child never touches the DB and leaves by os._exit, so pooled connections are safe to keep.
    parent_sock, child_sock = socket.socketpair()
    log_fd = open_try_log(current.log_path)
    watch = TaskWatch(
        db=db, target=current.target, try_row_id=current.try_row_id, limits=limits, say=current.say,
        poll_interval=float(settings.get("executor", "memory_poll_interval")),
        heartbeat_interval=float(settings.get("scheduler", "heartbeat_interval")),
        kill_grace_period=float(settings.get("executor", "kill_grace_period")),
        xcom_max_size=current.start.xcom_max_size, stop_requested=lambda: stop.requested,
    )
    pid = watch.fork(lambda: task_process.main(current.start, child_sock, log_fd), close_in_child=[parent_sock])
    child_sock.close()
    os.close(log_fd)
    try:
        identity: ProcessIdentity | None = ProcessIdentity.of(pid)
    except Exception:  # noqa: BLE001 - it may already be gone; the wait will tell
        identity = None
    with db.session() as session:
        session.execute(
            update(TaskTry).where(TaskTry.id == current.try_row_id)
            .values(pid=pid, process_start_time=identity.start_time if identity else None)
        )
    current.say(f"try {current.request.try_number} started: pid {pid} on host {hostname()}"
                + (f"; memory_limit {limits.memory_limit} bytes" if limits.memory_limit else "")
                + (f"; execution_timeout {limits.execution_timeout:g} s" if limits.execution_timeout else ""))
    return watch.wait(parent_sock)


def _record(settings: Settings, db: Database, current: _Try, result: WatchResult) -> TaskInstanceState:
    """Write the outcome: ``task_try`` and the TI's state in one transaction; return the TI's new state."""
    request = current.request
    now = datetime.now(UTC)
    state = next_state(result.outcome, request.try_number, current.start.max_tries)
    next_retry_at = None
    if state is TI.UP_FOR_RETRY:
        delay = result.retry_delay
        if delay is None:
            delay = current.policy.retry_delay_for(request.try_number) if current.policy else 0.0
        next_retry_at = now + timedelta(seconds=max(0.0, delay))
    with db.session() as session:
        session.execute(
            update(TaskTry).where(TaskTry.id == current.try_row_id).values(
                state=state.value, end_date=now, exit_code=result.exit_code, signal=result.signal,
                peak_rss_bytes=result.peak_rss_bytes, cpu_seconds=result.cpu_seconds,
                end_reason=result.end_reason.value, error=result.error,
            )
        )
        won = set_ti_state(
            session, request.ti_id, TI.RUNNING, state, expected_try_number=request.try_number,
            end_date=now, end_reason=result.end_reason.value, next_retry_at=next_retry_at,
        )
    summary = _summary(result)
    current.say(f"try {request.try_number} ended: {state.value} ({result.end_reason.value}); {summary}"
                + (f"; next try after {next_retry_at.isoformat()}" if next_retry_at else ""))
    if not won:
        current.say("the task instance was no longer running this try (zombie check or user action); "
                    "its state was left as it is", "WARNING")
    return state


def _summary(result: WatchResult) -> str:
    how = f"killed by signal {result.signal}" if result.signal else f"exit code {result.exit_code}"
    peak = f"{result.peak_rss_bytes / (1024 * 1024):.1f} MiB" if result.peak_rss_bytes is not None else "?"
    cpu = f"{result.cpu_seconds:.2f} s" if result.cpu_seconds is not None else "?"
    return f"{how}, peak RSS {peak}, CPU {cpu}"


def _outside_callbacks(settings: Settings, db: Database, current: _Try, result: WatchResult, state: TaskInstanceState) -> None:
    """Run the task's retry/failure callbacks when the supervisor, not the task, decided the outcome."""
    if result.end_reason not in (EndReason.MEMORY_LIMIT_EXCEEDED, EndReason.TIMEOUT, EndReason.KILLED):
        return
    policy = current.policy
    wanted = {
        TI.UP_FOR_RETRY: policy.has_on_retry_callback if policy else True,
        TI.FAILED: policy.has_on_failure_callback if policy else True,
    }.get(state, False)
    if not wanted:
        return
    timeout = float(settings.get("executor", "callback_timeout"))
    current.say(f"running {state.value} callbacks in a child process (timeout {timeout:g} s)")
    # The child never touches the DB and leaves by os._exit, so pooled connections are safe to keep.
    log_fd = open_try_log(current.log_path)
    error = result.error or result.end_reason.value
    code = run_child(lambda: task_process.callback_main(current.start, state, error, log_fd), timeout, [log_fd])
    if code is None:
        current.say(f"callbacks did not finish within {timeout:g} s; killed", "WARNING")

