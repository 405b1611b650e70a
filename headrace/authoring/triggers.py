"""Triggers: small asyncio waits a deferred task hands to the triggerer (Airflow's ``BaseTrigger``).

A task defers with ``self.defer(trigger=..., method_name=..., kwargs=..., timeout=...)`` (see
:meth:`headrace.authoring.task.BaseOperator.defer`): its process ends, the task instance becomes
``deferred`` and the trigger is stored as ``serialize()``'s ``(classpath, kwargs)``. The triggerer
(``headrace triggerer``) rebuilds it as ``import(classpath)(**kwargs)`` and iterates ``run()``, an async
generator, in one event loop with thousands of others; the first :class:`TriggerEvent` it yields resumes
the task in a new process with ``method_name(context, event=payload)``.

A trigger must never block the event loop (no ``time.sleep``, no blocking I/O without
``asyncio.to_thread``): the triggerer measures the loop's lag and reports the trigger that held it.
``kwargs`` and event payloads are stored as JSON with XCom's types (datetimes, timedeltas, …: see
:mod:`headrace.authoring.xcom_serde`).

A task can also *start* in the triggerer, with no process until the trigger fires: an operator class with
``start_from_trigger = True`` and ``start_trigger_args = StartTriggerArgs(...)`` (:class:`StartTriggerArgs`;
see :mod:`headrace.authoring.start_trigger`).

The triggers here (Airflow's, with Airflow's argument names): :class:`DateTimeTrigger`,
:class:`TimeDeltaTrigger` (``airflow.triggers.temporal`` / ``airflow.providers.standard.triggers.temporal``)
and :class:`FileTrigger` (``airflow.triggers.file`` / ``airflow.providers.standard.triggers.file``), and
:class:`DagStateTrigger` and :class:`WorkflowTrigger` (``airflow.triggers.external_task``), which read DAG runs
and task instances through the triggerer.
"""

from __future__ import annotations

import asyncio
import glob
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.authoring.external_states import external_status
from headrace.exceptions import DagDefinitionError

TRIGGER_FAIL_REPR = "__fail__"
"""``next_method`` of a task instance whose trigger failed or timed out (Airflow's marker): the resumed task
raises ``TaskDeferralError`` / ``TaskDeferralTimeout`` instead of calling a method."""
TRIGGER_TIMEOUT = "Trigger timeout"
"""``next_kwargs["error"]`` when the deferral outlasted its ``timeout`` (Airflow's wording)."""
TRIGGER_FAILURE = "Trigger failure"
"""``next_kwargs["error"]`` when the trigger raised or ended without an event."""
END_FROM_TRIGGER_REFUSED = (
    "end_from_trigger=True is not supported (in Airflow the trigger's TaskSuccessEvent / TaskFailedEvent / "
    "TaskSkippedEvent ends the task with no process); here the task always resumes in a process, in its next method"
)
"""Why ``end_from_trigger=True`` is refused (one sentence, named in every refusal)."""


@dataclass
class StartTriggerArgs:
    """How a task that starts in the triggerer defers before any process runs (Airflow's ``StartTriggerArgs``).

    An operator class sets ``start_trigger_args = StartTriggerArgs(...)`` and ``start_from_trigger = True`` (as
    class attributes, or on the instance in ``__init__``); the scheduler then creates the trigger
    ``trigger_cls(**trigger_kwargs)`` itself and puts the task instance in ``deferred`` — a new try, no process
    — and the task resumes in ``next_method(context, event=payload, **next_kwargs)`` like any deferred task.
    ``trigger_cls`` is the trigger's class path (``"headrace.triggers.DateTimeTrigger"``); ``trigger_kwargs``
    and ``next_kwargs`` are JSON with XCom's types, and string values of ``trigger_kwargs`` are rendered with
    Jinja when the try starts (see :mod:`headrace.authoring.start_trigger`); ``timeout`` (a timedelta or
    seconds): the longest wait, after which the task fails with ``TaskDeferralTimeout``.
    """

    trigger_cls: str
    """The trigger's class, ``module.ClassName``, importable by the triggerer."""
    next_method: str
    """The operator's method the task resumes in once the trigger fired."""
    trigger_kwargs: dict[str, Any] | None = None
    """Keyword arguments of ``trigger_cls``; string values may be Jinja templates."""
    next_kwargs: dict[str, Any] | None = None
    """Extra keyword arguments of ``next_method`` (beside ``event``)."""
    timeout: timedelta | float | None = None
    """Longest wait (timedelta or seconds); None: no limit."""

    def copy(self) -> StartTriggerArgs:
        """A copy with its own ``trigger_kwargs`` / ``next_kwargs`` dicts (each operator gets one: assigning
        through a class attribute's would change every task of the class, as happens in Airflow)."""
        return StartTriggerArgs(
            trigger_cls=self.trigger_cls,
            next_method=self.next_method,
            trigger_kwargs=dict(self.trigger_kwargs) if self.trigger_kwargs is not None else None,
            next_kwargs=dict(self.next_kwargs) if self.next_kwargs is not None else None,
            timeout=self.timeout,
        )


class TriggerEvent:
    """What a trigger yields when its wait is over: ``payload`` (JSON-able with XCom's types) reaches the
    resumed task as ``event``."""

    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"TriggerEvent<{self.payload!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TriggerEvent) and other.payload == self.payload

    __hash__ = None  # type: ignore[assignment]


class BaseTrigger(ABC):
    """Base of triggers: ``serialize()`` says how to rebuild it, ``run()`` waits and yields events.

    ``trigger_id`` is set by the triggerer to the ``trigger`` row's id before ``run()`` starts.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.trigger_id: int | None = None
        """The ``trigger`` row running this trigger (set by the triggerer)."""

    @abstractmethod
    def serialize(self) -> tuple[str, dict[str, Any]]:
        """``(classpath, kwargs)``: ``import_string(classpath)(**kwargs)`` rebuilds this trigger."""

    @abstractmethod
    def run(self) -> AsyncIterator[TriggerEvent]:
        """An async generator: wait (without blocking the loop), then ``yield TriggerEvent(payload)``.

        Only the first event is used. Raising fails the task instance (its try's error names the trigger's
        exception); ending without an event fails it too.
        """

    async def cleanup(self) -> None:  # noqa: B027 - optional hook, a no-op by default (Airflow's)
        """Called once ``run()`` is done or cancelled (the trigger fired, failed, or is no longer needed)."""

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        return f"<{classpath} {kwargs}>"


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise DagDefinitionError(f"{name}: expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None:
        raise DagDefinitionError(f"{name}: the datetime must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC)


class DateTimeTrigger(BaseTrigger):
    """Fires at ``moment`` (a timezone-aware datetime, or its ISO 8601 text, as a rendered template gives it)
    with the moment as payload.

    ``end_from_trigger=True`` (Airflow's: the task ends in the triggerer) is refused by name: headrace always
    resumes the task. Raises ``DagDefinitionError`` for a naive datetime, text that is not ISO 8601 with an
    offset, or another type.
    """

    def __init__(self, moment: datetime | str, *, end_from_trigger: bool = False) -> None:
        super().__init__()
        if end_from_trigger:
            raise DagDefinitionError(f"DateTimeTrigger: {END_FROM_TRIGGER_REFUSED}")
        if isinstance(moment, str):
            try:
                moment = datetime.fromisoformat(moment)
            except ValueError:
                raise DagDefinitionError(f"DateTimeTrigger moment: not an ISO 8601 datetime: {moment!r}") from None
        self.moment = _aware(moment, "DateTimeTrigger moment")
        self.end_from_trigger = end_from_trigger

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "headrace.triggers.DateTimeTrigger", {"moment": self.moment, "end_from_trigger": self.end_from_trigger}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Sleep in steps of at most an hour so a changed clock (suspend, NTP) is caught up with.
        while (left := (self.moment - datetime.now(UTC)).total_seconds()) > 0:
            await asyncio.sleep(min(left, 3600.0))
        yield TriggerEvent(self.moment)


class TimeDeltaTrigger(DateTimeTrigger):
    """Fires ``delta`` (a timedelta) after it was made — when the task deferred — with that moment as payload.

    Serialized as the :class:`DateTimeTrigger` of that moment, as Airflow does (a triggerer restart does not
    restart the wait).
    """

    def __init__(self, delta: timedelta, *, end_from_trigger: bool = False) -> None:
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(f"TimeDeltaTrigger: delta must be a timedelta, got {type(delta).__name__}")
        super().__init__(datetime.now(UTC) + delta, end_from_trigger=end_from_trigger)


class FileTrigger(BaseTrigger):
    """Fires (payload ``True``) once a file matches ``filepath``, a glob pattern (``recursive=True``: ``**``
    spans directories), checking every ``poke_interval`` seconds. The glob runs in a thread, off the loop."""

    def __init__(self, filepath: str, recursive: bool = False, poke_interval: float = 5.0, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(filepath, str) or not filepath:
            raise DagDefinitionError(f"FileTrigger: filepath must be a non-empty str, got {filepath!r}")
        if kwargs:
            raise DagDefinitionError(f"FileTrigger: unknown argument(s) {sorted(kwargs)}")
        self.filepath = filepath
        self.recursive = recursive
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "headrace.triggers.FileTrigger", {
            "filepath": self.filepath,
            "recursive": self.recursive,
            "poke_interval": self.poke_interval,
        }

    def _found(self) -> bool:
        for path in glob.glob(self.filepath, recursive=self.recursive):
            if os.path.isfile(path):
                return True
            for _, _, files in os.walk(path):
                if files:
                    return True
        return False

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while not await asyncio.to_thread(self._found):
            await asyncio.sleep(self.poke_interval)
        yield TriggerEvent(True)


DagRunStatesReader = Callable[[str, Sequence[str]], Awaitable[dict[str, str]]]
"""``reader(dag_id, run_ids) -> {run_id: state}`` of the runs that exist: how a trigger reads DAG runs."""
ExternalTaskStatesReader = Callable[
    [str, Sequence[datetime], Sequence[str] | None, str | None], Awaitable[dict[str, Any]]
]
"""``reader(dag_id, logical_dates, task_ids, task_group_id)`` → the runs of ``dag_id`` at those dates with the
states of the task instances asked for (the ExternalTaskSensor's answer: ``{"runs", "group_task_ids"}``, see
:mod:`headrace.authoring.external_states`): how :class:`WorkflowTrigger` reads another DAG."""

_RUNTIME: dict[str, Any] = {}


def install_trigger_runtime(
    dag_run_states: DagRunStatesReader | None, external_task_states: ExternalTaskStatesReader | None = None
) -> None:
    """Install (None: remove) the triggerer's readers of the metadata database: DAG runs' states for
    :class:`DagStateTrigger`, another DAG's task instances for :class:`WorkflowTrigger` (the triggerer does,
    reading in a worker thread; authoring code never touches the database)."""
    for key, reader in (("dag_run_states", dag_run_states), ("external_task_states", external_task_states)):
        if reader is None:
            _RUNTIME.pop(key, None)
        else:
            _RUNTIME[key] = reader


class DagStateTrigger(BaseTrigger):
    """Fires once every run of ``run_ids`` of ``dag_id`` is in one of ``states``, checking every
    ``poll_interval`` seconds (Airflow's ``DagStateTrigger``). Payload: ``{"dag_id", "run_ids", <run_id>:
    <state> …}``. Runs only in a triggerer (it reads the DAG runs through it). Raises ``DagDefinitionError``
    for no run ids or no states."""

    def __init__(
        self,
        dag_id: str,
        states: Sequence[str],
        run_ids: Sequence[str] | None = None,
        poll_interval: float = 5.0,
        execution_dates: Any = None,
    ) -> None:
        super().__init__()
        if execution_dates is not None:
            raise DagDefinitionError("DagStateTrigger: execution_dates is not supported; pass run_ids")
        if not run_ids:
            raise DagDefinitionError("DagStateTrigger: run_ids must name at least one run")
        if not states:
            raise DagDefinitionError("DagStateTrigger: states must name at least one state")
        self.dag_id = dag_id
        self.states = [str(s) for s in states]
        self.run_ids = [str(r) for r in run_ids]
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "headrace.triggers.DagStateTrigger", {
            "dag_id": self.dag_id,
            "states": self.states,
            "run_ids": self.run_ids,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        reader: DagRunStatesReader | None = _RUNTIME.get("dag_run_states")
        if reader is None:
            raise RuntimeError("DagStateTrigger runs only in a triggerer (no DAG-run reader installed)")
        while True:
            found = await reader(self.dag_id, self.run_ids)
            if all(found.get(run_id) in self.states for run_id in self.run_ids):
                yield TriggerEvent({"dag_id": self.dag_id, "run_ids": self.run_ids, **found})
                return
            await asyncio.sleep(self.poll_interval)


class WorkflowTrigger(BaseTrigger):
    """Waits, as an ExternalTaskSensor does, for tasks (``external_task_ids``), a task group
    (``external_task_group_id``) or the whole runs (neither) of ``external_dag_id`` at ``logical_dates``
    (Airflow's ``WorkflowTrigger``; ``execution_dates`` is Airflow 2's name). Every ``poke_interval`` seconds
    it reads their states through the triggerer and decides in the sensor's order (``failed_states``, then
    ``skipped_states``, then ``allowed_states``: :mod:`headrace.authoring.external_states`); it fires once one
    decides, with payload ``{"status": "failed" | "skipped" | "success"}``. ``soft_fail`` is carried for the
    resumed sensor (it decides with it). Runs only in a triggerer.

    Raises ``DagDefinitionError`` for no dates, ``run_ids`` (not supported: pass the logical dates) or
    ``external_task_ids`` given as a string.
    """

    def __init__(
        self,
        external_dag_id: str,
        run_ids: Sequence[str] | None = None,
        execution_dates: Sequence[datetime] | None = None,
        logical_dates: Sequence[datetime] | None = None,
        external_task_ids: Sequence[str] | None = None,
        external_task_group_id: str | None = None,
        failed_states: Sequence[str] | None = None,
        skipped_states: Sequence[str] | None = None,
        allowed_states: Sequence[str] | None = None,
        poke_interval: float = 2.0,
        soft_fail: bool = False,
    ) -> None:
        super().__init__()
        if run_ids:
            raise DagDefinitionError("WorkflowTrigger: run_ids is not supported; pass logical_dates")
        dates = list(logical_dates or execution_dates or [])
        if not dates:
            raise DagDefinitionError("WorkflowTrigger: logical_dates must name at least one date")
        if isinstance(external_task_ids, str):
            raise DagDefinitionError("WorkflowTrigger: external_task_ids must be a list of task ids, not a string")
        self.external_dag_id = external_dag_id
        self.logical_dates = [_aware(d, "WorkflowTrigger logical date") for d in dates]
        self.external_task_ids = list(external_task_ids) if external_task_ids else None
        self.external_task_group_id = external_task_group_id
        self.failed_states = [str(s) for s in failed_states or []]
        self.skipped_states = [str(s) for s in skipped_states or []]
        self.allowed_states = [str(s) for s in allowed_states or ["success"]]
        self.poke_interval = float(poke_interval)
        self.soft_fail = bool(soft_fail)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "headrace.triggers.WorkflowTrigger", {
            "external_dag_id": self.external_dag_id,
            "logical_dates": self.logical_dates,
            "external_task_ids": self.external_task_ids,
            "external_task_group_id": self.external_task_group_id,
            "failed_states": self.failed_states,
            "skipped_states": self.skipped_states,
            "allowed_states": self.allowed_states,
            "poke_interval": self.poke_interval,
            "soft_fail": self.soft_fail,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        reader: ExternalTaskStatesReader | None = _RUNTIME.get("external_task_states")
        if reader is None:
            raise RuntimeError("WorkflowTrigger runs only in a triggerer (no task-instance reader installed)")
        while True:
            answer = await reader(
                self.external_dag_id, self.logical_dates, self.external_task_ids, self.external_task_group_id
            )
            status = external_status(
                answer,
                task_ids=self.external_task_ids,
                task_group_id=self.external_task_group_id,
                allowed_states=self.allowed_states,
                skipped_states=self.skipped_states,
                failed_states=self.failed_states,
                date_count=len(self.logical_dates),
            )
            if status is not None:
                yield TriggerEvent({"status": status})
                return
            await asyncio.sleep(self.poke_interval)


__all__ = [
    "END_FROM_TRIGGER_REFUSED",
    "BaseTrigger",
    "DagStateTrigger",
    "DateTimeTrigger",
    "FileTrigger",
    "StartTriggerArgs",
    "TimeDeltaTrigger",
    "TriggerEvent",
    "WorkflowTrigger",
    "install_trigger_runtime",
]
