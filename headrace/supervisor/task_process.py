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

import json
import logging
import os
import signal
import socket
import sys
import traceback
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TextIO

from headrace.authoring import xcom_serde
from headrace.authoring.asset_events import events_to_record
from headrace.authoring.context import build_context, current_context
from headrace.authoring.dag import DAG
from headrace.authoring.expand_input import map_length_of
from headrace.authoring.mapped import MappedOperator, render_map_index
from headrace.authoring.secrets import install_secrets_runtime
from headrace.authoring.task import BaseOperator
from headrace.authoring.xcom import (
    RETURN_KEY,
    xcoms_for_result,
)
from headrace.authoring.xcom_backend import resolve_xcom_backend
from headrace.authoring.xcom_serde import AllowedClasses, set_allowed_classes
from headrace.dagfiles.loader import load_dags, remembered_dags
from headrace.exceptions import (
    ConfigError,
    FailTask,
    ParamValidationError,
    RescheduleTask,
    RetryTask,
    SkipTask,
    TaskDeferred,
    TaskNotFound,
    TaskTerminated,
    XComError,
)
from headrace.logs.files import LOG_LINE_FORMAT
from headrace.masking import MaskingStream, SecretMasker
from headrace.states import TaskInstanceState
from headrace.supervisor.channel_ti import ChannelSecrets, ChannelTI, TaskStart
from headrace.supervisor.outcome import next_state
from headrace.supervisor.protocol import (
    Deferral,
    Outcome,
    SetAssetEvents,
    SupervisorGone,
    TaskChannel,
    TaskDone,
)
from headrace.types import Context

log = logging.getLogger("headrace.task")

__all__ = ["ChannelSecrets", "ChannelTI", "TaskStart", "callback_main", "main", "run_callbacks"]


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
            set_allowed_classes(
                AllowedClasses.from_config(
                    start.allowed_deserialization_classes, start.allowed_deserialization_classes_regexp
                )
            )
        except (ConfigError, ValueError) as exc:
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
        resume = None
        if start.next_method is not None:  # a deferred task resuming: next_method instead of execute
            resume = (start.next_method, start.next_kwargs)
        outcome, error, delay, reschedule, deferral = _execute(task, context, ti, start.max_map_length, resume)
        if outcome == "success" and task.outlets:  # recorded with the success, in the outcome's transaction
            channel.request(SetAssetEvents(events=events_to_record(task.outlets, context["outlet_events"])))
        state = next_state(outcome, start.try_number, start.max_tries)
        run_callbacks(task, state, context)
        if error is not None:
            error = masker.mask(error)  # it is stored in the DB
        log.info("try %d ended: %s%s", start.try_number, state.value, f" ({error})" if error else "")
        label = masker.mask(ti.rendered_map_index) if ti.rendered_map_index is not None else None
        if label is not None:
            log.info("map index rendered as %s", label)
        channel.request(
            TaskDone(
                outcome=outcome,
                error=error,
                retry_delay=delay,
                rendered_map_index=label,
                reschedule_date=reschedule,
                deferral=deferral,
            )
        )
        return 0 if outcome in ("success", "skipped", "reschedule", "deferred") else 1
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
    task: BaseOperator,
    context: Context,
    ti: ChannelTI,
    max_map_length: int = 1024,
    resume: tuple[str, str | None] | None = None,
) -> tuple[Outcome, str | None, float | None, datetime | None, Deferral | None]:
    """Unmap (a mapped task), render, execute, label (``map_index_template``) and push the result; return
    ``(outcome, error, retry_delay, reschedule_date, deferral)``.

    ``resume``: ``(next_method, next_kwargs as JSON text)`` of a deferred task resuming — ``task.resume_execution`` runs
    instead of ``execute``. A ``TaskDeferred`` ends the process with outcome ``deferred`` and the
    serialized trigger (a trigger that cannot be serialized fails the try).

    Once the task's code has started (``pre_execute`` hooks, callbacks, ``execute``), its label is rendered as
    Airflow does: after a success a template that cannot render fails the try; after an exception (a failure,
    a skip, a retry) a rendering error is logged and never replaces the task's own.
    """
    running = False
    try:
        if isinstance(task, MappedOperator):
            task = task.unmap_for(context)  # this map index's arguments, resolved
            context["task"] = task
        task.render_template_fields(context)
        ti.record_rendered_fields(task)
        with current_context(context):
            running = True
            if task.pre_execute_hook is not None:
                task.pre_execute_hook(context)
            run_callbacks(task, "execute", context)
            if resume is not None:
                next_kwargs = dict(xcom_serde.decode(json.loads(resume[1] or "{}")))
                result = task.resume_execution(resume[0], next_kwargs, context)
            else:
                result = task.execute(context)
        running = False
        ti.rendered_map_index = render_map_index(context)
        _push_result(task, result, ti, max_map_length)
        return "success", None, None, None, None
    except SkipTask as exc:
        log.info("task skipped: %s", _text(exc) or "SkipTask")
        return "skipped", None, None, None, None
    except RescheduleTask as exc:  # a sensor's unmet poke in reschedule mode: this process ends, the try goes on
        log.info("poke done; the sensor's next poke is due at %s", exc.reschedule_date.isoformat())
        return "reschedule", None, None, exc.reschedule_date, None
    except TaskDeferred as exc:  # the task hands its wait to a trigger: this process ends, the try goes on
        try:
            deferral = _deferral(exc)
        except Exception as failure:  # noqa: BLE001 - the trigger's serialize() is user code
            context["exception"] = failure
            log.error("the task deferred, but its trigger could not be stored:\n%s", _traceback(failure))
            return "failed", _one_line(failure), None, None, None
        log.info(
            "deferring to %s; resuming in %s%s",
            deferral.classpath,
            deferral.method_name,
            f" (timeout {deferral.timeout:g} s)" if deferral.timeout is not None else "",
        )
        return "deferred", None, None, None, deferral
    except FailTask as exc:
        context["exception"] = exc
        log.error("task failed without retry (FailTask): %s", _text(exc))
        return "fail_no_retry", _one_line(exc), None, None, None
    except RetryTask as exc:
        context["exception"] = exc
        log.error(
            "task asked for a retry (RetryTask)%s: %s",
            f" in {exc.delay:g} s" if exc.delay is not None else "",
            _text(exc),
        )
        return "retry", _one_line(exc), exc.delay, None, None
    except (TaskTerminated, SupervisorGone):
        raise
    except BaseException as exc:  # noqa: BLE001 - any exception (even SystemExit) fails the try
        context["exception"] = exc
        log.error("task failed with %s\n%s", _one_line(exc), _traceback(exc))
        return "failed", _one_line(exc), None, None, None
    finally:
        if running:  # the task's code raised: label the index anyway, never masking its error
            try:
                ti.rendered_map_index = render_map_index(context)
            except Exception as exc:  # noqa: BLE001 - logged; the try's own outcome stands
                log.warning("map_index_template not rendered: %s", _one_line(exc))


def _deferral(exc: TaskDeferred) -> Deferral:
    """The hand-over of ``exc`` as stored: the trigger's ``serialize()`` and the resume point as JSON text.

    Raises ``TypeError`` / ``XComError`` when the trigger is not a trigger or its kwargs cannot be stored.
    """
    serialize = getattr(exc.trigger, "serialize", None)
    if not callable(serialize):
        raise TypeError(f"defer(trigger=...) needs a BaseTrigger, got {type(exc.trigger).__name__}")
    classpath, kwargs = serialize()
    return Deferral(
        classpath=str(classpath),
        kwargs=json.dumps(xcom_serde.encode(dict(kwargs))),
        method_name=exc.method_name,
        next_kwargs=json.dumps(xcom_serde.encode(dict(exc.kwargs))) if exc.kwargs else None,
        timeout=exc.timeout.total_seconds() if exc.timeout is not None else None,
    )


def _push_result(task: BaseOperator, result: Any, ti: ChannelTI, max_map_length: int) -> None:
    """Push the XComs of ``result``; the return value of an unmapped task a mapped task maps over carries its
    length (Airflow's ``task_map``), and must be a list or dict of at most ``max_map_length`` items."""
    mapping = task.dag is not None and ti.map_index < 0 and task.task_id in task.dag.mapped_over_ids()
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
        if isinstance(task, MappedOperator):  # the operator of this map index, as the task process had it
            context["task"] = task.unmap_for_callbacks(context)
        run_callbacks(task, state, context)
        return 0
    except BaseException as exc:  # noqa: BLE001
        log.error("could not run callbacks: %s", _traceback(exc))
        return 1
    finally:
        _drain_output()
