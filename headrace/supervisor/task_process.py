"""The task process: the child the supervisor forks to run a task's code.

It is forked from the supervisor, so headrace and its dependencies are
already imported; only the DAG file is imported here — unless the fork
server preloaded it and the file is unchanged, then its DAGs are reused. ``main`` reads like the
life of a try: startup (own process group, output into the try's log,
logging), run (import the DAG file, find the task, build the context, render
templates, ``on_execute_callback``, ``execute``, push the result as XCom),
finalize (the task's own callback for the outcome — ``on_skipped_callback``
when it raised ``SkipTask`` — and ``TaskDone`` to the supervisor). It never touches
the metadata database: XCom, skipping, variables and connections go through
the supervisor over the channel described in :mod:`headrace.supervisor.protocol`.
Every secret it fetches is registered with the process's
:class:`~headrace.masking.SecretMasker`, which masks it in
everything written to the try's log through ``sys.stdout`` / ``sys.stderr``.

``callback_main`` is the short-lived child the supervisor forks to run a
task's ``on_failure_callback`` / ``on_retry_callback`` when the outcome was
decided outside the task process (memory limit, timeout, killed).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TextIO

from headrace.authoring.asset_events import events_to_record
from headrace.authoring.context import RunInfo, build_context, current_context
from headrace.authoring.dag import DAG
from headrace.authoring.expand_input import map_length_of, mapped_over
from headrace.authoring.mapped import MappedOperator
from headrace.authoring.secrets import SecretsUnavailable, install_secrets_runtime
from headrace.authoring.task import BaseOperator
from headrace.authoring.trigger_dagrun import TriggerDagRunError
from headrace.authoring.xcom import (
    RETURN_KEY,
    deserialize_xcom,
    deserialize_xcom_list,
    serialize_xcom,
    xcoms_for_result,
)
from headrace.authoring.xcom_backend import DEFAULT_XCOM_BACKEND, BaseXCom, resolve_xcom_backend
from headrace.dagfiles.loader import load_dags, remembered_dags
from headrace.exceptions import (
    ConfigError,
    FailTask,
    HeadraceError,
    ParamValidationError,
    RetryTask,
    SecretsError,
    SkipTask,
    TaskNotFound,
    TaskTerminated,
    XComError,
)
from headrace.logs.files import LOG_LINE_FORMAT
from headrace.masking import MaskingStream, SecretMasker
from headrace.states import TaskInstanceState
from headrace.supervisor.outcome import next_state
from headrace.supervisor.protocol import (
    AssetEventsValue,
    ConnectionValue,
    DagRunStateValue,
    DagRunTriggered,
    Error,
    GetAssetEvents,
    GetConnection,
    GetDagRunState,
    GetVariable,
    GetXCom,
    Outcome,
    SetAssetEvents,
    SetRenderedFields,
    SetXCom,
    SkipTasks,
    SupervisorGone,
    TaskChannel,
    TaskDone,
    TriggerDagRun,
    VariableValue,
    XComValue,
    rendered_field_text,
)
from headrace.types import Context

log = logging.getLogger("headrace.task")


@dataclass(frozen=True)
class TaskStart:
    """Everything the task process needs, prepared by the supervisor before the fork."""

    fileloc: str
    """DAG file to import."""
    dag_id: str
    task_id: str
    run: RunInfo
    """The DAG run, as the task sees it."""
    try_number: int
    max_tries: int
    """The task instance's ``max_tries`` (its ``retries``)."""
    xcom_max_size: int
    """``core.xcom_max_size``: largest XCom value in bytes of JSON."""
    start_date: datetime | None = None
    """When the try was claimed (the context's ``start_date``); None: when the task process starts."""
    xcom_backend: str = DEFAULT_XCOM_BACKEND
    """``core.xcom_backend``: import path of the XCom backend class."""
    map_index: int = -1
    """The task instance's map index (-1: not mapped)."""
    expanded_ti_count: int | None = None
    """The context's ``expanded_ti_count``: how many task instances the mapped task has in this run (None: not
    mapped)."""
    max_map_length: int = 1024
    """``core.max_map_length``: the longest value a task may push for a mapped task to map over."""
    conf_overrides_params: bool = True
    """``core.dag_run_conf_overrides_params``: the run's conf overrides the task's params in the context."""


class ChannelTI:
    """``RuntimeTI`` backed by the supervisor channel (``context["ti"]`` in the task process)."""

    def __init__(
        self,
        start: TaskStart,
        channel: TaskChannel | None,
        masker: SecretMasker | None = None,
        backend: type[BaseXCom] = BaseXCom,
    ) -> None:
        self.dag_id = start.dag_id
        self.task_id = start.task_id
        self.run_id = start.run.run_id
        self.try_number = start.try_number
        self.max_tries = start.max_tries
        self.map_index = start.map_index
        self._max_bytes = start.xcom_max_size
        self._channel = channel
        self._masker = masker
        self._backend = backend

    def __repr__(self) -> str:
        index = f" map_index {self.map_index}" if self.map_index >= 0 else ""
        return f"<TaskInstance {self.dag_id}.{self.task_id} {self.run_id}{index} try {self.try_number}>"

    def _request(self, message: GetXCom | SetXCom | SkipTasks) -> XComValue | None:
        if self._channel is None:
            raise XComError("XCom and skipping are not available in callbacks run after the task process ended")
        response = self._channel.request(message)
        if isinstance(response, Error):
            raise XComError(response.message)
        return response if isinstance(response, XComValue) else None

    def xcom_push(
        self, key: str, value: Any, *, map_length: int | None = None, map_keys: list[str] | None = None
    ) -> None:
        """Store XCom ``key``. Raises ``XComError`` if the value is not serializable or too big.

        ``map_length`` / ``map_keys``: the value's length and dict keys, recorded for a mapped task
        downstream that maps over it.
        """
        text = serialize_xcom(
            value,
            self._max_bytes,
            task_id=self.task_id,
            key=key,
            backend=self._backend,
            dag_id=self.dag_id,
            run_id=self.run_id,
            map_index=self.map_index,
        )
        self._request(SetXCom(key=key, value_json=text, map_length=map_length, map_keys=map_keys))

    def xcom_pull(
        self,
        task_ids: str | Sequence[str] | None = None,
        key: str = "return_value",
        dag_id: str | None = None,
        map_indexes: int | None = None,
    ) -> Any:
        """The XCom ``key`` of ``task_ids`` in this run (a list for a list of ids; None when missing).

        A mapped task's value is the list of its task instances' values by map index, unless
        ``map_indexes`` names one.
        """
        ids = task_ids if task_ids is None or isinstance(task_ids, str) else list(task_ids)
        response = self._request(GetXCom(task_ids=ids, key=key, dag_id=dag_id, map_indexes=map_indexes))
        if response is None or response.value_json is None:
            return None
        where = {"key": key, "dag_id": dag_id or self.dag_id, "run_id": self.run_id}
        indexes = response.map_indexes
        if isinstance(ids, list):
            return deserialize_xcom_list(response.value_json, ids, self._backend, map_indexes=indexes, **where)
        one = indexes[0] if indexes else None
        return deserialize_xcom(response.value_json, self._backend, task_id=ids, map_indexes=one, **where)

    def skip(self, task_ids: Iterable[str]) -> None:
        """Mark task instances of this run ``skipped`` (those not queued yet)."""
        self._request(SkipTasks(task_ids=sorted(set(task_ids))))

    def _ask_dag_runs(self, message: TriggerDagRun | GetDagRunState) -> DagRunTriggered | DagRunStateValue:
        if self._channel is None:
            raise TriggerDagRunError("DAG runs cannot be triggered from callbacks run after the task process ended")
        response = self._channel.request(message)
        if isinstance(response, Error):
            raise TriggerDagRunError(response.message)
        if not isinstance(response, (DagRunTriggered, DagRunStateValue)):
            raise TriggerDagRunError(f"unexpected answer to {message.type}: {response.type}")
        return response

    def trigger_dag_run(self, **request: Any) -> DagRunTriggered:
        """Have the supervisor create (or clear) a run: ``request`` holds :class:`TriggerDagRun`'s fields.

        Raises ``TriggerDagRunError`` with the supervisor's reason (DAG not found, conf refused, paused).
        """
        response = self._ask_dag_runs(TriggerDagRun(**request))
        assert isinstance(response, DagRunTriggered)
        return response

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        """The state of run ``run_id`` of ``dag_id`` (None: no such run)."""
        response = self._ask_dag_runs(GetDagRunState(dag_id=dag_id, run_id=run_id))
        assert isinstance(response, DagRunStateValue)
        return response.state

    def get_asset_events(self, name: str, uri: str) -> list[dict[str, Any]]:
        """The recorded events of asset ``(name, uri)``, oldest first (``inlet_events``). Raises
        ``HeadraceError`` when the supervisor could not read them."""
        if self._channel is None:
            return []
        response = self._channel.request(GetAssetEvents(name=name, uri=uri))
        if isinstance(response, Error):
            raise HeadraceError(response.message)
        if not isinstance(response, AssetEventsValue):
            raise HeadraceError(f"unexpected answer to get_asset_events: {response.type}")
        return list(response.events)

    def record_rendered_fields(self, task: BaseOperator) -> None:
        """Send the task's rendered template fields (masked) to be recorded; a refusal is logged, never raised."""
        if self._channel is None or not task.template_fields:
            return
        fields = {name: rendered_field_text(getattr(task, name, None)) for name in task.template_fields}
        if self._masker is not None:
            fields = {name: self._masker.mask(text) for name, text in fields.items()}
        response = self._channel.request(SetRenderedFields(try_number=self.try_number, fields=fields))
        if isinstance(response, Error):
            log.warning("rendered template fields not recorded: %s", response.message)


class ChannelSecrets:
    """``SecretsRuntime`` of the task process: asks the supervisor, registers what it gets with the masker."""

    def __init__(self, channel: TaskChannel | None, masker: SecretMasker) -> None:
        self._channel = channel
        self._masker = masker

    def _ask(self, message: GetVariable | GetConnection) -> VariableValue | ConnectionValue:
        if self._channel is None:
            raise SecretsUnavailable(
                "variables and connections are not available in callbacks run after the "
                "task process ended (memory limit, timeout, killed)"
            )
        response = self._channel.request(message)
        if isinstance(response, Error):
            raise SecretsError(response.message)
        if not isinstance(response, (VariableValue, ConnectionValue)):
            raise SecretsError(f"unexpected answer to {message.type}: {response.type}")
        return response

    def get_variable(self, key: str) -> str | None:
        """The variable's value (masked in the log from now on if its key names a secret), or None."""
        response = self._ask(GetVariable(key=key))
        value = response.value if isinstance(response, VariableValue) else None
        if value is not None:
            self._masker.add_sensitive(key, value)
        return value

    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        """The connection's fields (password and sensitive extras masked in the log from now on), or None."""
        response = self._ask(GetConnection(conn_id=conn_id))
        data = response.connection if isinstance(response, ConnectionValue) else None
        if data is not None:
            self._masker.add(data.get("password"))
            self._masker.add_sensitive("extra", data.get("extra") or {})
        return data


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        when = datetime.fromtimestamp(record.created, UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _start_child(log_fd: int) -> SecretMasker:
    """Own process group, stdin from /dev/null, stdout/stderr into the log (masking secrets), logging to stderr.

    Returns the process's masker (empty; secrets are added as they are fetched).
    """
    try:
        os.setpgid(0, 0)
    except PermissionError:  # the supervisor already made us a group leader
        pass
    for signum in (signal.SIGINT, signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - replaces the std streams for the life of the process
    masker = SecretMasker()
    sys.stdout = MaskingStream(_log_stream(1), masker)
    sys.stderr = MaskingStream(_log_stream(2), masker)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter(LOG_LINE_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    install_secrets_runtime(None)
    return masker


def _log_stream(fd: int) -> TextIO:
    return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def _drain_output() -> None:
    """Write out held-back partial lines (masked) and flush; the process is about to end."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, MaskingStream):
            stream.drain()
        else:
            stream.flush()


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    # The supervisor signals the process group and each pid of the tree, so SIGTERM can arrive twice:
    # a second one must not raise again inside the handling of the first (the try would exit 1, not 143).
    # SIGKILL follows after executor.kill_grace_period anyway.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TaskTerminated(f"received signal {signal.Signals(signum).name}")


def _load_task(start: TaskStart) -> tuple[DAG, BaseOperator]:
    # The fork server may have imported the file already (preload): reuse it while the file is unchanged.
    dags = remembered_dags(start.fileloc)
    if dags is None:
        dags = load_dags(start.fileloc)
    for dag in dags:
        if dag.dag_id == start.dag_id:
            return dag, dag.get_task(start.task_id)
    raise TaskNotFound(f"DAG file {start.fileloc} does not define DAG {start.dag_id!r}", dag_id=start.dag_id)


def _type_name(exc: BaseException) -> str:
    try:
        return str(type(exc).__name__)
    except TaskTerminated:
        raise
    except BaseException:  # noqa: BLE001 - a metaclass may do anything; the outcome must still be recorded
        return "<unnamed exception type>"


def _text(exc: BaseException) -> str:
    """``str(exc)``; if that raises, ``repr(exc)``; if that raises too, a note saying both failed. Never raises."""
    for render in (str, repr):
        try:
            return str(render(exc))
        except TaskTerminated:
            raise
        except BaseException:  # noqa: BLE001, S112 - user code: any failure moves on to the next fallback
            continue
    return "<str() and repr() of the exception failed>"


def _one_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (the message by :func:`_text`); never raises."""
    name = _type_name(exc)
    try:
        text = _text(exc).strip().splitlines()
    except TaskTerminated:
        raise
    except BaseException:  # noqa: BLE001 - a str subclass with a broken strip/splitlines
        text = []
    return f"{name}: {text[0]}" if text else name


def _traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc``, or a line saying why it could not be formatted; never raises."""
    try:
        return "".join(traceback.format_exception(exc)).rstrip()
    except TaskTerminated:
        raise
    except BaseException as failure:  # noqa: BLE001 - e.g. a broken __notes__ or __cause__
        return f"(the traceback of {_one_line(exc)} could not be formatted: {_one_line(failure)})"


def run_callbacks(task: BaseOperator, state: TaskInstanceState | str, context: Context) -> None:
    """Run the task's callbacks for ``state``; log and swallow their errors (the try's outcome stands).

    ``state``: success, up_for_retry, failed, skipped (``on_skipped_callback``: the task raised ``SkipTask``,
    as in Airflow, not a skip by trigger rule) or ``"execute"`` (``on_execute_callback``, before ``execute``).
    """
    callbacks = {
        TaskInstanceState.SUCCESS.value: task.on_success_callback,
        TaskInstanceState.UP_FOR_RETRY.value: task.on_retry_callback,
        TaskInstanceState.FAILED.value: task.on_failure_callback,
        TaskInstanceState.SKIPPED.value: task.on_skipped_callback,
        "execute": task.on_execute_callback,
    }.get(str(getattr(state, "value", state)), [])
    for callback in callbacks:
        name = getattr(callback, "__name__", repr(callback))
        log.info("running %s callback %s", getattr(state, "value", state), name)
        try:
            callback(context)
        except Exception:
            log.exception("callback %s failed; the try's outcome stands", name)


def main(start: TaskStart, sock: socket.socket, log_fd: int) -> int:
    """Run one try of the task in this (freshly forked) process; return the exit code.

    Exit codes: 0 success or skipped, 1 the task failed, 2 it never started,
    143 stopped by SIGTERM (the supervisor records why), 3 the supervisor went away.
    The caller must ``os._exit`` with it (never return into the parent's stack).
    """
    masker = _start_child(log_fd)
    channel = TaskChannel(sock)
    install_secrets_runtime(ChannelSecrets(channel, masker))
    log.info("running %s.%s (run %s), try %d", start.dag_id, start.task_id, start.run.run_id, start.try_number)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        try:
            dag, task = _load_task(start)
        except TaskTerminated:
            raise
        except BaseException as exc:  # noqa: BLE001 - user code or stored data: any failure is reported, not raised
            log.error(
                "could not load task %s from %s:\n%s",
                start.task_id,
                start.fileloc,
                _traceback(exc),
            )
            channel.request(TaskDone(outcome="failed", error=_one_line(exc), started=False))
            return 2
        try:
            backend = resolve_xcom_backend(start.xcom_backend)
        except ConfigError as exc:
            log.error("%s", exc)
            channel.request(TaskDone(outcome="failed", error=_one_line(exc), started=False))
            return 2
        ti = ChannelTI(start, channel, masker, backend)
        try:
            context = build_context(
                dag,
                task,
                start.run,
                ti,
                start_date=start.start_date,
                expanded_ti_count=start.expanded_ti_count,
                conf_overrides_params=start.conf_overrides_params,
            )
        except ParamValidationError as exc:  # the run's conf fails a schema of the task's own params
            log.error("task %s: %s", start.task_id, exc)
            channel.request(TaskDone(outcome="failed", error=_one_line(exc), started=False))
            return 2
        outcome, error, delay = _execute(task, context, ti, start.max_map_length)
        if outcome == "success" and task.outlets:  # recorded with the success, in the outcome's transaction
            channel.request(SetAssetEvents(events=events_to_record(task.outlets, context["outlet_events"])))
        state = next_state(outcome, start.try_number, start.max_tries)
        run_callbacks(task, state, context)
        if error is not None:
            error = masker.mask(error)  # it is stored in the DB
        log.info("try %d ended: %s%s", start.try_number, state.value, f" ({error})" if error else "")
        channel.request(TaskDone(outcome=outcome, error=error, retry_delay=delay))
        return 0 if outcome in ("success", "skipped") else 1
    except TaskTerminated as exc:
        log.error("task stopped: %s", exc)
        return 128 + signal.SIGTERM
    except SupervisorGone as exc:
        log.error("%s; stopping", exc)
        return 3
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _drain_output()


def _execute(
    task: BaseOperator, context: Context, ti: ChannelTI, max_map_length: int = 1024
) -> tuple[Outcome, str | None, float | None]:
    """Unmap (a mapped task), render, execute and push the result; return ``(outcome, error, retry_delay)``."""
    try:
        if isinstance(task, MappedOperator):
            task = task.unmap_for(context)  # this map index's arguments, resolved
            context["task"] = task
        task.render_template_fields(context)
        ti.record_rendered_fields(task)
        with current_context(context):
            if task.pre_execute_hook is not None:
                task.pre_execute_hook(context)
            run_callbacks(task, "execute", context)
            result = task.execute(context)
        _push_result(task, result, ti, max_map_length)
        return "success", None, None
    except SkipTask as exc:
        log.info("task skipped: %s", _text(exc) or "SkipTask")
        return "skipped", None, None
    except FailTask as exc:
        context["exception"] = exc
        log.error("task failed without retry (FailTask): %s", _text(exc))
        return "fail_no_retry", _one_line(exc), None
    except RetryTask as exc:
        context["exception"] = exc
        log.error(
            "task asked for a retry (RetryTask)%s: %s",
            f" in {exc.delay:g} s" if exc.delay is not None else "",
            _text(exc),
        )
        return "retry", _one_line(exc), exc.delay
    except (TaskTerminated, SupervisorGone):
        raise
    except BaseException as exc:  # noqa: BLE001 - any exception (even SystemExit) fails the try
        context["exception"] = exc
        log.error("task failed with %s\n%s", _one_line(exc), _traceback(exc))
        return "failed", _one_line(exc), None


def _push_result(task: BaseOperator, result: Any, ti: ChannelTI, max_map_length: int) -> None:
    """Push the XComs of ``result``; the return value of an unmapped task a mapped task maps over carries its
    length (Airflow's ``task_map``), and must be a list or dict of at most ``max_map_length`` items."""
    mapping = task.dag is not None and ti.map_index < 0 and mapped_over(list(task.dag.task_dict.values()), task.task_id)
    if mapping:
        try:
            length, keys = map_length_of(result, task_id=task.task_id, max_map_length=max_map_length)
        except ValueError as exc:
            raise XComError(str(exc)) from None
    for key, value in xcoms_for_result(task, result):
        if mapping and key == RETURN_KEY:
            ti.xcom_push(key, value, map_length=length, map_keys=keys)
        else:
            ti.xcom_push(key, value)


def callback_main(start: TaskStart, state: TaskInstanceState, error: str, log_fd: int) -> int:
    """Run the task's callbacks for ``state`` after the supervisor decided the outcome; return the exit code.

    XCom is not available to these callbacks (the try's channel is closed);
    ``context["exception"]`` is a ``RuntimeError`` carrying ``error``.
    """
    masker = _start_child(log_fd)
    install_secrets_runtime(ChannelSecrets(None, masker))
    try:
        dag, task = _load_task(start)
        context = build_context(
            dag,
            task,
            start.run,
            ChannelTI(start, None),
            start_date=start.start_date,
            expanded_ti_count=start.expanded_ti_count,
            conf_overrides_params=start.conf_overrides_params,
        )
        context["exception"] = RuntimeError(error)
        run_callbacks(task, state, context)
        return 0
    except BaseException as exc:  # noqa: BLE001
        log.error("could not run callbacks: %s", _traceback(exc))
        return 1
    finally:
        _drain_output()
