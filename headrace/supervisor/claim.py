"""The claim: win the try, load what it needs and release its task process, all in one transaction.

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
   try: the try's row is reopened for this poke's processes instead
   (:func:`_reopen_try`); so does a deferred task resuming (``next_method``
   set), which also keeps the XComs its try pushed before it deferred.

Why fork first: a forked process shares its parent's pages until one of them
writes to a page, which the kernel then copies (a page fault). Forked after
the claim's database work, the task process shared every page that work had
written, and the supervisor, writing the same pages again for its next
statements, took a second fault on each (some 900 per try); forked first, it
shares only what the fork server left, and each process copies a page once.

The statements are built once, with bind parameters (the fork server warms
them: :func:`.supervise.warm_up`).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import threading
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import aliased

from headrace.authoring.context import PreviousRun, RunInfo
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.dagfiles.serialization import SerializedTask
from headrace.db.assets import triggering_events_of
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersionTask, TaskInstance, TaskMap, TaskTry, XCom
from headrace.db.queries import previous_success_id
from headrace.db.transitions import set_ti_state
from headrace.logs.capped import CappedLog, output_pipe
from headrace.logs.files import append_line, format_line, try_log_path
from headrace.states import TaskInstanceState
from headrace.storage.stores import Stores
from headrace.storage.xcoms import XComObjects, is_reference
from headrace.supervisor import task_process
from headrace.supervisor.cgroups import Containment, hierarchy_in_use, try_marker
from headrace.supervisor.identity import ProcessIdentity
from headrace.supervisor.limits import ChildUsage, Limits
from headrace.supervisor.request import TryRequest
from headrace.supervisor.task_requests import TryTarget
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
REQUEST_OUTAGE_SHARE = 0.5
"""A task's request (XCom, variable, …) waits through an outage at most this share of the heartbeat
timeout (and of ``database.outage_tolerance``): meanwhile the supervisor checks no limits."""


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


# The hot path's statements are built once, with bind parameters, so their cache keys are computed once
# and their compiled forms are cached in the engine (which the fork server warms before forking).
_PREVIOUS = aliased(DagRun, name="previous_success")
_LOAD = (
    select(
        TaskInstance.id,
        TaskInstance.dag_id,
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.max_tries,
        DagRun.id,
        DagRun.dag_id,
        DagRun.run_id,
        DagRun.run_type,
        DagRun.conf,
        DagRun.logical_date,
        DagRun.queued_at,
        DagRun.data_interval_start,
        DagRun.data_interval_end,
        # Only this task's entry of the serialized DAG, by primary key: not read out of the whole document.
        DagVersionTask.serialized,
        TaskInstance.map_index,
        # The previous successful run's dates (the context's prev_*_success), in the same round trip.
        _PREVIOUS.data_interval_start,
        _PREVIOUS.data_interval_end,
        _PREVIOUS.start_date,
        _PREVIOUS.end_date,
        # Set for a sensor's next poke in reschedule mode: it continues the try (see _reopen_try).
        TaskInstance.reschedule_date,
        # Set for a deferred task resuming: it continues the try in next_method (see _reopen_try).
        TaskInstance.next_method,
        TaskInstance.next_kwargs,
    )
    .join_from(TaskInstance, DagRun, TaskInstance.dag_run_id == DagRun.id)
    .outerjoin(
        DagVersionTask,
        (DagVersionTask.dag_version_id == DagRun.dag_version_id) & (DagVersionTask.task_id == TaskInstance.task_id),
    )
    .outerjoin(_PREVIOUS, _PREVIOUS.id == previous_success_id(DagRun))
    .where(TaskInstance.id == bindparam("ti_id"))
)
_INSERT_TRY = insert(TaskTry).values(
    task_instance_id=bindparam("ti_id"),
    dag_id=bindparam("dag_id"),
    run_id=bindparam("run_id"),
    task_id=bindparam("task_id"),
    try_number=bindparam("try_number"),
    state=bindparam("state"),
    hostname=bindparam("hostname"),
    supervisor_pid=bindparam("supervisor_pid"),
    supervisor_start_time=bindparam("supervisor_start_time"),
    pid=bindparam("pid"),
    process_start_time=bindparam("process_start_time"),
    start_date=bindparam("start_date"),
    heartbeat_at=bindparam("start_date"),
    log_path=bindparam("log_path"),
    containment=bindparam("containment"),
    map_index=bindparam("map_index"),
)
_OWN_CLAIM = (
    select(TaskTry.id)
    .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
    .where(
        TaskTry.task_instance_id == bindparam("ti_id"),
        TaskTry.try_number == bindparam("try_number"),
        TaskTry.hostname == bindparam("host"),
        TaskTry.supervisor_pid == bindparam("supervisor_pid"),
        TaskTry.end_date.is_(None),
        TaskInstance.state == bindparam("running"),
        TaskInstance.try_number == bindparam("try_number"),
    )
)
_RESTART_TRY = (
    update(TaskTry)
    .where(TaskTry.id == bindparam("row_id"))
    .values(
        pid=bindparam("pid"),
        process_start_time=bindparam("process_start_time"),
        heartbeat_at=bindparam("now"),
    )
)
_CLEAR_XCOMS = delete(XCom).where(
    XCom.dag_run_id == bindparam("dag_run_pk"),
    XCom.task_id == bindparam("task_id"),
    XCom.map_index == bindparam("map_index"),
)
_CLEARED_VALUES = select(XCom.value).where(
    XCom.dag_run_id == bindparam("dag_run_pk"),
    XCom.task_id == bindparam("task_id"),
    XCom.map_index == bindparam("map_index"),
)
_CLEAR_TASK_MAP = delete(TaskMap).where(
    TaskMap.dag_run_id == bindparam("dag_run_pk"),
    TaskMap.task_id == bindparam("task_id"),
    TaskMap.map_index == bindparam("map_index"),
)
_EXPANDED_TI_COUNT = select(func.count()).where(
    TaskInstance.dag_run_id == bindparam("dag_run_pk"), TaskInstance.task_id == bindparam("task_id")
)


def _transaction(db: Database) -> AbstractContextManager[Connection]:
    """A Core transaction (commit on success, roll back on error).

    The hot path runs on a bare ``Connection``: no ORM ``Session`` to build and
    no ORM-enabled execution path per statement (``set_ti_state``'s compare-and-set
    runs as the same Core ``UPDATE … WHERE state = :expected``).
    """
    return db.engine.begin()


def _claim_ti(conn: Connection, ti_id: int, try_number: int, now: datetime) -> bool:
    """``queued → running`` for exactly ``try_number`` (compare-and-set); True if this call won."""
    return set_ti_state(
        conn,
        ti_id,
        TI.QUEUED,
        TI.RUNNING,
        expected_try_number=try_number,
        start_date=now,
        end_date=None,
        end_reason=None,
        next_retry_at=None,
        updated_at=now,
    )


def _policy(entry: object) -> SerializedTask | None:
    try:
        return SerializedTask.from_dict(entry)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None and key[0] is not None
    return int(key[0])


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


def claim(settings: Settings, db: Database, request: TryRequest, task: Prestarted) -> _Try | None:
    """Claim the try and record it and its task process (``task``, forked ahead) in one transaction; None if the
    claim was lost.

    The task process's true pid goes into the ``task_try`` row in the same
    commit; it waits on its gate and runs nothing until that commit succeeded
    (then it is released). If anything fails before, the transaction is rolled
    back and the task process keeps waiting: the caller retries the claim or
    cancels it (:meth:`Prestarted.cancel`), as it does when the claim is lost.
    Nothing is written when the claim is lost.
    """
    now = datetime.now(UTC)
    me = ProcessIdentity.of(os.getpid())
    log_path = try_log_path(
        settings.base_log_folder, request.dag_id, request.run_id, request.task_id, request.try_number, request.map_index
    )
    current: _Try | None = None
    cleared: list[str] = []
    try:
        with _transaction(db) as conn:
            own_row: int | None = None
            if not _claim_ti(conn, request.ti_id, request.try_number, now):
                # Lost — unless an earlier attempt of ours committed and only its answer was lost (an outage
                # mid-COMMIT): then the try is ours, its gate was shut, and it starts afresh on that row.
                own_row = conn.execute(
                    _OWN_CLAIM,
                    {
                        "ti_id": request.ti_id,
                        "try_number": request.try_number,
                        "host": me.host,
                        "supervisor_pid": me.pid,
                        "running": TI.RUNNING.value,
                    },
                ).scalar_one_or_none()
                if own_row is None:
                    return None
                log.warning(
                    "try %d of %s.%s was already claimed by this supervisor (the answer to its "
                    "COMMIT was lost); starting it",
                    request.try_number,
                    request.dag_id,
                    request.task_id,
                )
            row = conn.execute(_LOAD, {"ti_id": request.ti_id}).one()
            (
                ti_pk,
                dag_id,
                run_id,
                task_id,
                max_tries,
                run_pk,
                run_dag_id,
                run_run_id,
                run_type,
                conf,
                logical_date,
                queued_at,
                interval_start,
                interval_end,
                task_entry,
                map_index,
                *previous,
                reschedule_date,
                next_method,
                next_kwargs,
            ) = row
            policy = _policy(task_entry) if task_id == request.task_id else None
            logical = logical_date or queued_at
            info = RunInfo(
                dag_id=run_dag_id,
                run_id=run_run_id,
                logical_date=logical,
                data_interval_start=interval_start or logical,
                data_interval_end=interval_end or logical,
                run_type=run_type,
                conf=dict(conf or {}),
                previous_success=PreviousRun(*previous) if any(previous) else None,
                triggering_asset_events=triggering_events_of(conn, run_pk) if run_type == "asset_triggered" else (),
            )
            start = task_process.TaskStart(
                fileloc=request.fileloc,
                dag_id=dag_id,
                task_id=task_id,
                run=info,
                try_number=request.try_number,
                max_tries=max_tries,
                xcom_max_size=settings.get_int("core", "xcom_max_size"),
                start_date=now,
                xcom_backend=settings.get_str("core", "xcom_backend"),
                map_index=map_index,
                expanded_ti_count=conn.execute(_EXPANDED_TI_COUNT, {"dag_run_pk": run_pk, "task_id": task_id}).scalar()
                if map_index >= 0
                else None,
                max_map_length=settings.get_int("core", "max_map_length"),
                conf_overrides_params=settings.get_bool("core", "dag_run_conf_overrides_params"),
                allowed_deserialization_classes=settings.get_str("core", "allowed_deserialization_classes"),
                allowed_deserialization_classes_regexp=settings.get_str(
                    "core", "allowed_deserialization_classes_regexp"
                ),
                next_method=next_method,
                next_kwargs=next_kwargs,
            )
            target = TryTarget(
                ti_id=ti_pk, dag_run_pk=run_pk, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index
            )
            current = _Try(request, target, start, policy, log_path, 0)
            current.stores = Stores(settings, db)
            pid: int | None = None
            process_start_time: float | None = None
            try:
                try_log = CappedLog(log_path, settings.get_int("logging", "max_try_log_bytes"))
            except OSError as exc:
                current.start_error = f"cannot open the try's log {log_path}: {exc}"
            else:
                if task.pid is None:
                    try_log.close(timeout=0)
                    current.start_error = task.error or "the task process was not started"
                else:
                    pid = _watch(settings, db, current, task, try_log)
                    try:
                        process_start_time = ProcessIdentity.of(pid).start_time
                    except Exception:  # noqa: BLE001 - it may already be gone; the wait will tell
                        process_start_time = None
            current.resumed = reschedule_date is not None or next_method is not None
            if own_row is None and current.resumed:
                own_row = _reopen_try(conn, ti_pk, request.try_number, me, pid, process_start_time, now)
            if own_row is None:
                result = conn.execute(
                    _INSERT_TRY,
                    {
                        "ti_id": ti_pk,
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "task_id": task_id,
                        "try_number": request.try_number,
                        "state": TI.RUNNING.value,
                        "hostname": me.host,
                        "supervisor_pid": me.pid,
                        "supervisor_start_time": me.start_time,
                        "pid": pid,
                        "process_start_time": process_start_time,
                        "start_date": now,
                        "log_path": str(log_path),
                        "containment": current.watch.containment.kind
                        if current.watch is not None and current.watch.containment is not None
                        else None,
                        "map_index": map_index,
                    },
                )
                current.try_row_id = _inserted_id(result)
            else:
                conn.execute(
                    _RESTART_TRY, {"row_id": own_row, "pid": pid, "process_start_time": process_start_time, "now": now}
                )
                current.try_row_id = own_row
            if current.watch is not None:
                current.watch.try_row_id = current.try_row_id
            if next_method is None:  # a resumed deferral keeps what the try pushed before it deferred (Airflow's)
                of_ti = {"dag_run_pk": run_pk, "task_id": task_id, "map_index": map_index}
                if current.stores is not None and current.stores.xcoms_url:  # their objects go after the commit
                    cleared = [t for t in conn.execute(_CLEARED_VALUES, of_ti).scalars() if is_reference(t)]
                conn.execute(_CLEAR_XCOMS, of_ti)
                conn.execute(_CLEAR_TASK_MAP, {"dag_run_pk": run_pk, "task_id": task_id, "map_index": map_index})
    except BaseException:
        if current is not None:
            current.watch = None  # the task process waits on: the caller retries the claim or cancels it
            current.close_log()
        raise
    if current.watch is not None and current.log is not None:
        if task.output_fd is not None:
            current.log.adopt_pipe(task.output_fd)  # drained by the watch's select: no thread per try
            task.output_fd = None
        current.watch.output = current.log
        task.release(current.start)
    if cleared and current.stores is not None:  # off the supervisor's path: the store may be slow or down
        purge = XComObjects(current.stores).purge
        current.purging = threading.Thread(target=purge, args=(cleared,), name="xcom-purge", daemon=True)
        current.purging.start()
    return current


_POKE_TRY = select(TaskTry.id).where(
    TaskTry.task_instance_id == bindparam("ti_id"), TaskTry.try_number == bindparam("try_number")
)
_REOPEN_TRY = (
    update(TaskTry)
    .where(TaskTry.id == bindparam("row_id"))
    .values(
        state=TI.RUNNING.value,
        hostname=bindparam("host"),
        supervisor_pid=bindparam("supervisor_pid"),
        supervisor_start_time=bindparam("supervisor_start_time"),
        pid=bindparam("pid"),
        process_start_time=bindparam("process_start_time"),
        heartbeat_at=bindparam("now"),
        end_date=None,
        end_reason=None,
        error=None,
        exit_code=None,
        signal=None,
    )
)


def _reopen_try(
    conn: Connection,
    ti_id: int,
    try_number: int,
    me: ProcessIdentity,
    pid: int | None,
    process_start_time: float | None,
    now: datetime,
) -> int | None:
    """A sensor's next poke in reschedule mode: reopen its try's row for this poke's processes (host, pids,
    start times; ``running`` again, the last poke's end cleared; ``start_date`` stays the try's first poke).
    Return the row's id, or None if the try has no row yet (then the claim inserts one).

    The try's pokes are listed in ``task_reschedule``; the row always names the processes of the current one,
    so zombie checks and re-adoption see them as any try's.
    """
    row_id: int | None = conn.execute(_POKE_TRY, {"ti_id": ti_id, "try_number": try_number}).scalar_one_or_none()
    if row_id is None:
        return None
    conn.execute(
        _REOPEN_TRY,
        {
            "row_id": row_id,
            "host": me.host,
            "supervisor_pid": me.pid,
            "supervisor_start_time": me.start_time,
            "pid": pid,
            "process_start_time": process_start_time,
            "now": now,
        },
    )
    return row_id


def _watch(settings: Settings, db: Database, current: _Try, task: Prestarted, try_log: CappedLog) -> int:
    """Set up ``current.watch`` (on the task process forked ahead), ``current.sock`` and ``current.log``;
    return the task process's pid. Its output pipe joins ``try_log`` once the claim is committed."""
    assert task.pid is not None and task.sock is not None
    policy = current.policy
    limits = Limits(
        memory_limit=policy.memory_limit if policy else None,
        execution_timeout=policy.execution_timeout if policy else None,
    )
    watch = TaskWatch(
        db=db,
        target=current.target,
        try_row_id=current.try_row_id,
        limits=limits,
        say=current.say,
        poll_interval=settings.get_float("executor", "memory_poll_interval"),
        heartbeat_interval=settings.get_float("scheduler", "heartbeat_interval"),
        kill_grace_period=settings.get_float("executor", "kill_grace_period"),
        xcom_max_size=current.start.xcom_max_size,
        stop_requested=lambda: False,
        try_number=current.request.try_number,
        encryptor=_LazyEncryptor(settings),
        outage_tolerance=min(
            settings.get_float("database", "outage_tolerance"),
            REQUEST_OUTAGE_SHARE * settings.get_float("scheduler", "task_instance_heartbeat_timeout"),
        ),
        self_fence_after=SELF_FENCE_SHARE * settings.get_float("scheduler", "task_instance_heartbeat_timeout"),
        containment=task.containment,
        run_id_pattern=settings.get_str("scheduler", "allowed_run_id_pattern"),
        xcoms=XComObjects(current.stores) if current.stores is not None and current.stores.xcoms_url else None,
    )
    watch.adopt(task.pid, task.usage_before, task.started)
    current.log = try_log  # the supervisor's own lines go through the same cap
    if task.warning is not None:
        current.say(task.warning, "WARNING")
    current.watch = watch
    current.sock = task.sock
    return task.pid


class _LazyEncryptor:
    """Builds the Encryptor on first use: only tries that read a variable or connection pay for the key."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._encryptor: Encryptor | None = None

    def __call__(self) -> Encryptor:
        if self._encryptor is None:
            self._encryptor = Encryptor.from_settings(self._settings)
        return self._encryptor
