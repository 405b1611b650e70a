"""``supervise``: run one try from claim to recorded outcome.

The life of a try, as the supervisor sees it:

1. **claim** — first the task process (:mod:`.task_process`) is forked, held
   at a gate knowing nothing of the try (fewer pages to copy on write: see
   :mod:`.claim`); then ``queued → running`` for exactly this ``try_number``;
   losing means another supervisor owns the try, and nothing runs (the task
   process is sent away unreleased);
2. **start** — in the same transaction, insert the ``task_try`` row (host,
   supervisor pid and start time, the task's true pid and start time, log
   path), clear the TI's XComs; commit, then open the gate, handing the task
   process what to run — the task's code runs only once the claim is
   committed (steps 1 and 2 are :mod:`.claim`); the task process moves itself
   into the try's own cgroup (:mod:`.cgroups`) while it waits at the gate, so
   everything it starts is the try's;
3. **watch** — wait on the process (pidfd) and its channel (socket) at once,
   answering requests, sampling the process tree, heartbeating, enforcing
   ``memory_limit`` and ``execution_timeout``, and stopping the task when
   the heartbeat finds that a user set the task instance's state meanwhile;
4. **finish** — reap it, kill what is left of the try (escaped descendants
   too: the cgroup, or the try's marker; counted on the try row) and write ``task_try`` and the TI's new state in one
   transaction; for outcomes decided here (memory, timeout, killed) run the
   task's failure/retry callbacks in a short child.

The supervisor never imports user code itself: limits and the retry policy
come from the serialized DAG stored with the run's DAG version.
"""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime, timedelta
from types import FrameType

from headrace.config import Settings
from headrace.logs.files import open_try_log
from headrace.states import EndReason, TaskInstanceState
from headrace.supervisor import task_process
from headrace.supervisor.cgroups import become_subreaper, remove_stale_cgroups
from headrace.supervisor.claim import _Try, claim, prestart
from headrace.supervisor.identity import hostname
from headrace.supervisor.limits import format_memory
from headrace.supervisor.outcome import next_state
from headrace.supervisor.pending import Outcome, forget, keep
from headrace.supervisor.request import TryRequest
from headrace.supervisor.shipping import finish_shipping, start_shipping
from headrace.supervisor.store import TryStore
from headrace.supervisor.watch import WatchResult, run_child

log = logging.getLogger("headrace.supervisor")

TI = TaskInstanceState

EXIT_RECORDED = 0
"""``supervise`` ran the try (whatever its outcome) and recorded it."""
EXIT_CLAIM_LOST = 2
"""Another supervisor owns the try (or it is no longer queued): nothing ran (the task process forked ahead was
sent away at its gate)."""
EXIT_ERROR = 1
"""The supervisor itself failed; it recorded what it could."""
# EXIT_NOT_RELEASED (4) and EXIT_NOT_CONTAINED (5), a task process's exit codes, are the claim's (.claim).


def supervise(settings: Settings, store: TryStore, request: TryRequest, *, sweep_stale_cgroups: bool = True) -> int:
    """Run the try named by ``request`` and record its outcome; return the exit code.

    Every read and write of the metadata goes through ``store`` (:class:`~.store.TryStore`; on the
    database: :class:`~.sql_store.SqlTryStore`).

    ``EXIT_RECORDED`` (0) when the try ran and its outcome is in the DB,
    ``EXIT_CLAIM_LOST`` (2) when the try was not ``queued`` with this
    ``try_number`` (another supervisor has it; nothing ran), ``EXIT_ERROR`` (1)
    when the supervisor itself failed. SIGTERM to the supervisor stops the task
    tree gracefully and records reason ``killed``, signal 15. Must run in the
    main thread of its process (it installs a SIGTERM handler and forks).

    ``sweep_stale_cgroups``: once the try is recorded, remove the try cgroups of
    supervisors that were killed (:func:`~.cgroups.remove_stale_cgroups`). The
    fork server passes False: it sweeps itself, when it starts and whenever one
    of its supervisors ends abnormally, so its supervisors need not each look.
    """
    stop = _StopFlag()
    become_subreaper()  # a descendant the task orphans stays ours (cgroups.py), even without a cgroup
    previous = signal.signal(signal.SIGTERM, stop.set)
    try:
        try:
            task = prestart(settings, request)  # forked before the claim's work: see claim.py
        except BaseException:
            signal.signal(signal.SIGTERM, previous)
            raise
        try:
            current = store.retry(
                lambda: claim(settings, store, request, task),
                what=f"claiming try {request.try_number} of {request.dag_id}.{request.task_id}",
            )
        except BaseException:
            task.cancel()
            signal.signal(signal.SIGTERM, previous)
            raise
        if current is None or current.watch is None:
            task.cancel()  # not released: it exits without running anything
        if current is None:
            signal.signal(signal.SIGTERM, previous)
            log.warning(
                "try %d of %s.%s (%s) was not queued for us; not running it",
                request.try_number,
                request.dag_id,
                request.task_id,
                request.run_id,
            )
            return EXIT_CLAIM_LOST
        shipper = start_shipping(settings, current.stores or store.stores(), current)
        try:
            result = _run(current, stop)
        except Exception as exc:  # noqa: BLE001 - record the failure, then report it by exit code
            log.exception("supervisor failed")
            current.say(f"supervisor error: {type(exc).__name__}: {exc}", "ERROR")
            result = WatchResult(
                outcome="failed",
                end_reason=EndReason.NOT_STARTED,
                error=f"supervisor error: {exc}",
            )
            try:
                _end_leftovers(current)  # the watch failed before its own final kill
                _record(settings, store, current, result)
            finally:
                current.close_log()
                finish_shipping(settings, current, shipper)
            return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        state = _record(settings, store, current, result)
        _outside_callbacks(settings, current, result, state)
    finally:
        current.close_log()
        finish_shipping(settings, current, shipper)
        if current.watch is not None and current.watch.containment is not None:
            current.watch.containment.remove()  # already gone, unless the watch failed
            if sweep_stale_cgroups:
                remove_stale_cgroups(current.watch.containment.hierarchy)  # of supervisors killed meanwhile
    return EXIT_RECORDED


def _end_leftovers(current: _Try) -> None:
    """Kill whatever is left of the try's processes and remove its containment (never raises)."""
    containment = current.watch.containment if current.watch is not None else None
    if containment is None:
        return
    try:
        containment.kill_all()
    except Exception:  # noqa: BLE001 - best effort on a path that is already failing; the next supervisor sweeps
        log.exception("could not kill the leftovers of the try")
    finally:
        containment.remove()


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def set(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True


def _run(current: _Try, stop: _StopFlag) -> WatchResult:
    """Watch the (claimed and released) task process until it ends."""
    watch = current.watch
    if watch is None or current.sock is None:
        raise OSError(current.start_error or "the task process was not started")
    watch.stop_requested = lambda: stop.requested
    limits = watch.limits
    current.say(
        f"try {current.request.try_number} started: pid {watch.pid} on host {hostname()}"
        + (f"; memory_limit {format_memory(limits.memory_limit)}" if limits.memory_limit else "")
        + (f"; execution_timeout {limits.execution_timeout:g} s" if limits.execution_timeout else "")
    )
    result = watch.wait(current.sock)
    if current.log is not None:
        current.log.drain()  # the task's last output goes in before the supervisor's closing lines
        current.log.flush_tail()  # and before the outcome: a reader following the log stops at the try's end
    return result


def _record(settings: Settings, store: TryStore, current: _Try, result: WatchResult) -> TaskInstanceState:
    """Write the outcome: ``task_try`` and the TI's state in one transaction; return the TI's new state."""
    request = current.request
    now = datetime.now(UTC)
    state = next_state(result.outcome, request.try_number, current.start.max_tries)
    try_state = state
    if result.end_reason is EndReason.EXTERNALLY_SET:
        # The try row says what became of it: the state the user (or the scheduler: removed) set if that
        # ends a try, else failed.
        try_state = {s.value: s for s in (TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.UP_FOR_RETRY, TI.REMOVED)}.get(
            result.external_state or "", TI.FAILED
        )
        state = try_state
    next_retry_at = None
    if state is TI.UP_FOR_RETRY and result.end_reason is not EndReason.EXTERNALLY_SET:
        delay = result.retry_delay
        if delay is None:
            delay = current.policy.retry_delay_for(request.try_number) if current.policy else 0.0
        next_retry_at = now + timedelta(seconds=max(0.0, delay))
    reschedule_date = None
    if state is TI.UP_FOR_RESCHEDULE:  # a sensor's unmet poke: its next one, in this same try
        reschedule_date = result.reschedule_date or now
    deferral = result.deferral if state is TI.DEFERRED else None
    if state is TI.DEFERRED and deferral is None:  # cannot happen with this task process; never leave it waiting
        state = try_state = TI.FAILED
    outcome = Outcome(
        ti_id=request.ti_id,
        try_number=request.try_number,
        try_row_id=current.try_row_id,
        state=state.value,
        try_state=try_state.value,
        end_date=now,
        end_reason=result.end_reason.value,
        next_retry_at=next_retry_at,
        exit_code=result.exit_code,
        signal=result.signal,
        peak_rss_bytes=result.peak_rss_bytes,
        cpu_seconds=result.cpu_seconds,
        error=result.error,
        processes_left=result.processes_left,
        processes_killed=result.processes_killed,
        rendered_fields=current.watch.rendered_fields if current.watch is not None else None,
        rendered_map_index=current.watch.rendered_map_index if current.watch is not None else None,
        reschedule_date=reschedule_date,
        poke_start_date=current.start.start_date if reschedule_date is not None else None,
        trigger_classpath=deferral.classpath if deferral is not None else None,
        trigger_kwargs=deferral.kwargs if deferral is not None else None,
        next_method=deferral.method_name if deferral is not None else None,
        next_kwargs=deferral.next_kwargs if deferral is not None else None,
        trigger_timeout=now + timedelta(seconds=deferral.timeout)
        if deferral is not None and deferral.timeout is not None
        else None,
        asset_events=current.watch.asset_events if current.watch is not None else None,
        asset_source=[current.target.dag_id, current.target.task_id, current.target.run_id, current.target.map_index],
    )
    won = _write_outcome(settings, store, current, outcome)
    summary = _summary(result)
    current.say(
        f"try {request.try_number} ended: {state.value} ({result.end_reason.value}); {summary}"
        + (f"; next try after {next_retry_at.isoformat()}" if next_retry_at else "")
        + (f"; next poke at {reschedule_date.isoformat()}" if reschedule_date else "")
        + (f"; waiting for {deferral.classpath}, resuming in {deferral.method_name}" if deferral else "")
    )
    if not won and result.end_reason is not EndReason.EXTERNALLY_SET:
        current.say(
            "the task instance was no longer running this try (zombie check or user action); "
            "its state was left as it is",
            "WARNING",
        )
    return state


def _write_outcome(settings: Settings, store: TryStore, current: _Try, outcome: Outcome) -> bool:
    """Record ``outcome`` in one transaction, riding out a database outage; return whether the TI took it.

    The first attempt costs nothing extra. If it fails because the database
    is away, the outcome goes to a file on local disk (:func:`.outcome.keep`,
    which the scheduler on this host reads if this supervisor dies while
    waiting) and the transaction is tried again with backoff for
    ``database.outage_tolerance`` seconds; the file is removed once the
    outcome is in. Past the tolerance the error propagates and the file stays.
    """

    def attempt() -> bool:
        return store.record(outcome)

    try:
        return attempt()
    except Exception as exc:
        if not store.is_unavailable(exc):
            raise
        path = keep(settings.home, outcome)
        current.say(
            f"cannot record the outcome ({type(exc).__name__}); kept it in {path} and retrying for up to "
            f"{settings.get_float('database', 'outage_tolerance'):g} s",
            "WARNING",
        )
    won = store.retry(attempt, what=f"recording try {outcome.try_number} of task instance {outcome.ti_id}")
    forget(settings.home, outcome.ti_id, outcome.try_number)
    current.say("the database is back; outcome recorded")
    return won


def _summary(result: WatchResult) -> str:
    how = f"killed by signal {result.signal}" if result.signal else f"exit code {result.exit_code}"
    peak = f"{result.peak_rss_bytes / (1024 * 1024):.1f} MiB" if result.peak_rss_bytes is not None else "?"
    cpu = f"{result.cpu_seconds:.2f} s" if result.cpu_seconds is not None else "?"
    return f"{how}, peak RSS {peak}, CPU {cpu}"


def _outside_callbacks(settings: Settings, current: _Try, result: WatchResult, state: TaskInstanceState) -> None:
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
    timeout = settings.get_float("executor", "callback_timeout")
    current.say(f"running {state.value} callbacks in a child process (timeout {timeout:g} s)")
    # The child never touches the DB and leaves by os._exit, so pooled connections are safe to keep.
    log_fd = current.log.pipe() if current.log is not None else open_try_log(current.log_path)
    error = result.error or result.end_reason.value
    code = run_child(lambda: task_process.callback_main(current.start, state, error, log_fd), timeout, [log_fd])
    if current.log is not None:
        current.log.drain()
    if code is None:
        current.say(f"callbacks did not finish within {timeout:g} s; killed", "WARNING")
