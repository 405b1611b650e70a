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
:class:`DagStateTrigger` (``airflow.triggers.external_task``), which reads DAG runs through the triggerer.
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

_RUNTIME: dict[str, DagRunStatesReader] = {}


def install_trigger_runtime(dag_run_states: DagRunStatesReader | None) -> None:
    """Install (None: remove) the triggerer's DAG-run reader for :class:`DagStateTrigger` (the triggerer does,
    reading the metadata database in a worker thread; authoring code never touches it)."""
    if dag_run_states is None:
        _RUNTIME.pop("dag_run_states", None)
    else:
        _RUNTIME["dag_run_states"] = dag_run_states


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
        reader = _RUNTIME.get("dag_run_states")
        if reader is None:
            raise RuntimeError("DagStateTrigger runs only in a triggerer (no DAG-run reader installed)")
        while True:
            found = await reader(self.dag_id, self.run_ids)
            if all(found.get(run_id) in self.states for run_id in self.run_ids):
                yield TriggerEvent({"dag_id": self.dag_id, "run_ids": self.run_ids, **found})
                return
            await asyncio.sleep(self.poll_interval)


__all__ = [
    "END_FROM_TRIGGER_REFUSED",
    "BaseTrigger",
    "DagStateTrigger",
    "DateTimeTrigger",
    "FileTrigger",
    "StartTriggerArgs",
    "TimeDeltaTrigger",
    "TriggerEvent",
    "install_trigger_runtime",
]
