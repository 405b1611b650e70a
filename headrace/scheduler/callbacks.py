"""DAG-level ``on_success_callback`` / ``on_failure_callback``, run in forked children.

When a DAG run has finished, :meth:`CallbackRunner.run_pending` marks its
``callbacks_done`` with a compare-and-set (so the callback runs at most once,
even across a scheduler restart) and, if the DAG defines the matching
callback, forks a child that imports the DAG file, finds the DAG and calls
the callback with a context::

    {"dag": DAG, "dag_run": RunInfo, "run_id": str, "logical_date": datetime,
     "data_interval_start": datetime, "data_interval_end": datetime,
     "reason": "success" | "task_failure", "state": "success" | "failed"}

A deadline-miss callback (``state = "deadline_missed"``, claimed by
:mod:`headrace.observability.deadlines`) runs the same way, with
``reason = "deadline_missed"``, ``deadline`` and ``task_id`` (and ``task``
for a task's deadline) added to the context.

A task's ``on_retry_callback`` / ``on_failure_callback`` for a try the
scheduler ended as a *zombie* (its supervisor is gone, so nobody else will
run them) also runs here: ``task_id``, ``try_number`` and ``state``
(``up_for_retry`` or ``failed``) set; the task's usual context without XCom,
``exception`` carrying why; output appended to the try's log file.

The scheduler does not wait: children are reaped on later calls, and one
that runs longer than ``timeout`` seconds is killed. Whatever user code does
(raise, hang, exit), the scheduler carries on; errors go to the log.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from headrace.authoring.context import RunInfo, build_context
from headrace.authoring.mapped import MappedOperator
from headrace.dagfiles.loader import load_dags
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun
from headrace.exceptions import XComError
from headrace.logs.files import open_try_log
from headrace.scheduler.dagcache import DagCache
from headrace.states import DagRunState, TaskInstanceState
from headrace.supervisor import task_process

log = logging.getLogger(__name__)

DEADLINE_MISSED = "deadline_missed"
"""``CallbackRequest.state`` of a deadline-miss callback."""


@dataclass(frozen=True)
class CallbackRequest:
    """One DAG-level callback to run."""

    fileloc: str
    dag_id: str
    run: RunInfo
    state: str
    """``success`` or ``failed``: picks ``on_success_callback`` or ``on_failure_callback``;
    ``deadline_missed``: the DAG's (or task's) ``on_deadline_miss_callback``."""
    task_id: str | None = None
    """For ``deadline_missed``: the task whose deadline was missed (None: the DAG run's)."""
    deadline: datetime | None = None
    """For ``deadline_missed``: the deadline that passed."""
    try_number: int = 0
    """For a task's ``up_for_retry`` / ``failed`` callbacks after a zombie: the try that ended."""
    error: str = ""
    """For a zombie's task callbacks: why the try was ended (``context["exception"]``)."""
    log_path: str | None = None
    """For a zombie's task callbacks: the try's log file, which gets the callback's output."""
    map_index: int = -1
    """For a zombie's task callbacks: the task instance's map index (``-1``: not mapped)."""


class _EndedTI:
    """The ``ti`` of a zombie's callback context: identity only; XCom and skipping are not available."""

    def __init__(self, request: CallbackRequest, max_tries: int) -> None:
        assert request.task_id is not None
        self.dag_id, self.task_id, self.run_id = request.dag_id, request.task_id, request.run.run_id
        self.try_number, self.max_tries = request.try_number, max_tries
        self.map_index = request.map_index

    def xcom_push(self, key: str, value: Any) -> None:
        raise XComError("XCom is not available to callbacks of a try ended as a zombie")

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", dag_id: str | None = None) -> Any:
        raise XComError("XCom is not available to callbacks of a try ended as a zombie")

    def skip(self, task_ids: Any) -> None:
        raise XComError("skipping tasks is not available to callbacks of a try ended as a zombie")


def _zombie_task_callbacks(dag: Any, request: CallbackRequest) -> None:
    """Run a task's ``on_retry_callback`` / ``on_failure_callback`` for a try the scheduler ended as a zombie."""
    assert request.task_id is not None
    if request.log_path:  # the callbacks' output goes to the try's log, as when the supervisor runs them
        fd = open_try_log(Path(request.log_path))  # creates its folder: the try may have run on another host
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 — lives until os._exit
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    task = dag.get_task(request.task_id)
    context = build_context(dag, task, request.run, _EndedTI(request, task.retries))
    context["exception"] = RuntimeError(request.error)
    if isinstance(task, MappedOperator):  # the operator of this map index, as the task process had it
        context["task"] = task.unmap_for_callbacks(context)
    try:
        task_process.run_callbacks(task, TaskInstanceState(request.state), context)
    finally:
        sys.stdout.flush()  # the child leaves with os._exit
        sys.stderr.flush()


def _deadline_callbacks(dag: Any, request: CallbackRequest, context: dict[str, Any]) -> list[Any]:
    """The deadline-miss callbacks of the DAG or task; adds ``task``/``task_id``/``deadline`` to ``context``."""
    context.update(reason="deadline_missed", deadline=request.deadline, task_id=request.task_id)
    if request.task_id is None:
        callback = dag.on_deadline_miss_callback
        return [] if callback is None else (callback if isinstance(callback, list) else [callback])
    task = dag.get_task(request.task_id)
    context["task"] = task
    return list(task.on_deadline_miss_callback)


def _call(request: CallbackRequest) -> None:
    """In the child: import the file and call the DAG's callback (exceptions propagate)."""
    dags = {d.dag_id: d for d in load_dags(request.fileloc)}
    dag = dags[request.dag_id]
    if request.task_id is not None and request.state != DEADLINE_MISSED:
        _zombie_task_callbacks(dag, request)
        return
    success = request.state == DagRunState.SUCCESS.value
    context: dict[str, Any] = {
        "dag": dag,
        "dag_run": request.run,
        "run_id": request.run.run_id,
        "logical_date": request.run.logical_date,
        "data_interval_start": request.run.data_interval_start,
        "data_interval_end": request.run.data_interval_end,
        "reason": "success" if success else "task_failure",
        "state": request.state,
    }
    if request.state == DEADLINE_MISSED:
        callbacks = _deadline_callbacks(dag, request, context)
    else:
        callback = dag.on_success_callback if success else dag.on_failure_callback
        callbacks = [] if callback is None else (callback if isinstance(callback, list) else [callback])
    for cb in callbacks:
        cb(context)


def _child(request: CallbackRequest) -> None:
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
        _call(request)
    except BaseException:  # noqa: BLE001 — user code; report and leave
        log.exception("DAG %s callback for run %s failed", request.dag_id, request.run.run_id)
        code = 1
    finally:
        os._exit(code)


class CallbackRunner:
    """Starts DAG callbacks in children and reaps them."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.children: dict[int, tuple[float, CallbackRequest]] = {}
        """pid → (monotonic deadline, request)."""

    def run_pending(self, db: Database, now: datetime, *, cache: DagCache, only_run: int | None = None) -> int:
        """Start the callbacks of newly finished runs; reap finished children. Returns how many started.

        ``only_run`` (a ``dag_run.id``, ``dags test``) looks at that run alone."""
        self.reap()
        with db.read_session() as session:  # most calls find nothing: then take no write lock
            if not queries.runs_needing_callbacks(session, limit=1, only_run=only_run):
                return 0
        requests: list[CallbackRequest] = []
        with db.session() as session:
            for run in queries.runs_needing_callbacks(session, only_run=only_run):
                won = (
                    session.execute(
                        update(DagRun)
                        .where(DagRun.id == run.id, DagRun.callbacks_done.is_(False))
                        .values(callbacks_done=True)
                        .execution_options(synchronize_session=False)
                    ).rowcount  # type: ignore[attr-defined]
                    == 1
                )
                sdag = cache.get(session, run.dag_version_id)
                wanted = (
                    sdag.has_on_success_callback
                    if run.state == DagRunState.SUCCESS.value
                    else sdag.has_on_failure_callback
                )
                dag = session.get(DagModel, run.dag_id)
                if won and wanted and dag is not None:
                    requests.append(CallbackRequest(dag.fileloc, run.dag_id, RunInfo.from_run(run), run.state))
        return self.start(requests)

    def start(self, requests: list[CallbackRequest]) -> int:
        """Fork one child per request (the caller has claimed them); return how many were started."""
        for request in requests:
            pid = os.fork()
            if pid == 0:
                _child(request)
            self.children[pid] = (time.monotonic() + self.timeout, request)
        return len(requests)

    def reap(self, *, wait: bool = False) -> int:
        """Collect children that ended; kill those past their deadline. Returns how many were collected.

        ``wait``: keep collecting until every child has ended (each is killed at its deadline).
        """
        reaped = 0
        while True:
            for pid, (deadline, request) in list(self.children.items()):
                if time.monotonic() > deadline:
                    log.error(
                        "DAG %s callback for run %s ran over %g s; killed",
                        request.dag_id,
                        request.run.run_id,
                        self.timeout,
                    )
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    del self.children[pid]
                    reaped += 1
            if not wait or not self.children:
                return reaped
            time.sleep(0.01)


__all__ = ["DEADLINE_MISSED", "CallbackRequest", "CallbackRunner"]
