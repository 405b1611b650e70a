"""BaseSensorOperator: a task that waits for a condition by poking it, and PokeReturnValue.

A sensor's ``poke(context)`` returns whether its condition holds (a bool, or a
:class:`PokeReturnValue` that also carries the sensor's XCom value). ``execute``
pokes until it does, with Airflow's arguments and semantics:

* ``mode="poke"`` (default): one process sleeps ``poke_interval`` seconds
  between pokes, holding its executor and pool slot the whole time.
* ``mode="reschedule"``: an unmet poke raises :class:`~headrace.exceptions.RescheduleTask`;
  the try's process ends and its slot frees, the task instance waits in
  ``up_for_reschedule`` with no process at all, and the scheduler wakes at
  ``reschedule_date`` to run the next poke — the same ``try_number``, a new
  process. Each unmet poke is a ``task_reschedule`` row.
* ``timeout`` (seconds or timedelta, default 7 days) counts from the first
  poke: in poke mode from this try's start; in reschedule mode from the first
  rescheduled poke since the task instance was last cleared, so retries do
  not reset it (Airflow's rule). Past it the sensor fails with
  :class:`~headrace.exceptions.SensorTimeout`, without using its retries; with
  ``soft_fail`` it is skipped instead.
* ``exponential_backoff``: the wait after the n-th poke grows as
  ``poke_interval * 2 ** (n - 2)`` with a deterministic jitter (Airflow's), capped
  by ``max_wait`` and by the time left before ``timeout``.
* ``soft_fail``: a timeout, ``FailTask`` or ``TaskTimeout`` from ``poke`` skips
  the sensor; ``never_fail``: any error from ``poke`` skips it (the two are
  mutually exclusive); ``silent_fail``: an ordinary error from ``poke`` is
  logged and counts as an unmet poke.
* ``deferrable=True`` (on the sensors that take it: time, time delta, date time, file): the sensor defers
  to a trigger instead of poking, with ``timeout`` as the deferral's timeout; a deferral that times out
  fails with :class:`~headrace.exceptions.SensorTimeout` (skipped with ``soft_fail``), and a failed trigger
  is skipped with ``soft_fail`` too (Airflow's ``resume_execution``).
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from headrace.authoring.task import BaseOperator
from headrace.exceptions import (
    DagDefinitionError,
    FailTask,
    RescheduleTask,
    SensorTimeout,
    SkipTask,
    TaskDeferralError,
    TaskDeferralTimeout,
    TaskTimeout,
)
from headrace.types import Context

DEFAULT_TIMEOUT = 7 * 24 * 60 * 60.0
"""Seconds: a sensor's ``timeout`` when none is given (Airflow's ``sensors.default_timeout``, 7 days)."""

VALID_MODES = ("poke", "reschedule")

_SOFT_FAIL = (SensorTimeout, TaskTimeout, FailTask)
"""Errors from ``poke`` that ``soft_fail`` (and ``never_fail``) turn into a skip."""


class PokeReturnValue:
    """What a ``poke`` may return instead of a bool: whether the sensor is done, and its XCom value.

    When the sensor is done, ``xcom_value`` becomes its return value (the ``return_value`` XCom).
    """

    def __init__(self, is_done: bool, xcom_value: Any | None = None) -> None:
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self) -> bool:
        return self.is_done

    def __repr__(self) -> str:
        return f"PokeReturnValue(is_done={self.is_done!r}, xcom_value={self.xcom_value!r})"


def _seconds(name: str, value: float | timedelta | None, task_id: str) -> float | None:
    """``value`` in seconds (a timedelta or a non-negative number); raises ``DagDefinitionError`` naming it."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise DagDefinitionError(f"task {task_id!r}: {name} must be a timedelta or a number of seconds, got {value!r}")
    if seconds < 0:
        raise DagDefinitionError(f"task {task_id!r}: {name} must not be negative, got {value!r}")
    return seconds


class BaseSensorOperator(BaseOperator):
    """A task that waits: ``execute`` calls :meth:`poke` until it returns true (see the module docstring).

    ``poke_interval``, ``timeout`` and ``max_wait``: seconds or timedelta. ``mode``: ``"poke"`` or
    ``"reschedule"``. Raises ``DagDefinitionError`` naming the task for a negative or non-numeric
    duration, an unknown ``mode``, or ``soft_fail`` together with ``never_fail``. Subclasses
    implement ``poke(context) -> bool | PokeReturnValue``.
    """

    ui_color = "#e6f1f2"
    valid_modes: tuple[str, ...] = VALID_MODES

    def __init__(
        self,
        *,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float | None = None,
        soft_fail: bool = False,
        mode: str = "poke",
        exponential_backoff: bool = False,
        max_wait: timedelta | float | None = None,
        silent_fail: bool = False,
        never_fail: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.poke_interval: float = _seconds("poke_interval", poke_interval, self.task_id) or 0.0
        given = _seconds("timeout", timeout, self.task_id)
        self.timeout: float = DEFAULT_TIMEOUT if given is None else given
        self.max_wait: float | None = _seconds("max_wait", max_wait, self.task_id)
        if mode not in self.valid_modes:
            raise DagDefinitionError(
                f"task {self.task_id!r}: mode must be one of {list(self.valid_modes)}, got {mode!r}"
            )
        if soft_fail and never_fail:
            raise DagDefinitionError(f"task {self.task_id!r}: soft_fail and never_fail are mutually exclusive")
        self.mode = mode
        self.soft_fail = soft_fail
        self.exponential_backoff = exponential_backoff
        self.silent_fail = silent_fail
        self.never_fail = never_fail

    @property
    def reschedule(self) -> bool:
        """True in ``mode="reschedule"``."""
        return self.mode == "reschedule"

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Whether the condition holds now; subclasses override it. Raises ``NotImplementedError`` here."""
        raise NotImplementedError(f"{type(self).__name__} must implement poke(context)")

    def execute(self, context: Context) -> Any:
        """Poke until done; return the ``PokeReturnValue``'s XCom value (None for a plain bool).

        Raises ``SensorTimeout`` past ``timeout`` (``SkipTask`` with ``soft_fail``), and in reschedule mode
        ``RescheduleTask`` after an unmet poke (the try goes on in a new process at its ``reschedule_date``).
        """
        if self.reschedule:
            ask = getattr(context["ti"], "get_first_reschedule_date", None)  # None: run outside a supervisor
            first = ask(context) if ask is not None else None
            start_date = first or datetime.now(UTC)
            started_at: datetime | float = start_date

            def run_duration() -> float:
                return (datetime.now(UTC) - start_date).total_seconds()

        else:
            started_at = start_monotonic = time.monotonic()

            def run_duration() -> float:
                return time.monotonic() - start_monotonic

        poke_count = 1
        while True:
            done = self._poke_once(context)
            if done:
                print("Success criteria met. Exiting.", flush=True)
                return done.xcom_value if isinstance(done, PokeReturnValue) else None
            elapsed = run_duration()
            if elapsed > self.timeout:
                message = (
                    f"Sensor has timed out; run duration of {elapsed:.1f} seconds exceeds the specified "
                    f"timeout of {self.timeout:g}."
                )
                if self.soft_fail:
                    raise SkipTask(message)
                raise SensorTimeout(message)
            interval = self.next_poke_interval(started_at, run_duration, poke_count)
            if self.reschedule:
                raise RescheduleTask(datetime.now(UTC) + timedelta(seconds=interval))
            time.sleep(interval)
            poke_count += 1

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """As :meth:`BaseOperator.resume_execution`; a deferral's timeout raises ``SensorTimeout`` (``SkipTask``
        with ``soft_fail``), a failed trigger ``SkipTask`` with ``soft_fail``."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout as exc:
            if self.soft_fail:
                raise SkipTask(f"Skipping due to soft_fail is set to True: {exc}") from exc
            raise SensorTimeout(f"Sensor has timed out while deferred: {exc}") from exc
        except TaskDeferralError as exc:
            if self.soft_fail:
                raise SkipTask(f"Skipping due to soft_fail is set to True: {exc}") from exc
            raise

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Where a deferrable sensor resumes once its trigger fired: the condition holds, nothing to push."""
        print(f"Trigger fired ({event!r}); success criteria met.", flush=True)

    def _poke_once(self, context: Context) -> bool | PokeReturnValue:
        """One poke, with ``soft_fail`` / ``never_fail`` / ``silent_fail`` applied to what it raises."""
        try:
            return self.poke(context)
        except _SOFT_FAIL as exc:
            if self.soft_fail:
                raise SkipTask("Skipping due to soft_fail is set to True.") from exc
            if self.never_fail:
                raise SkipTask("Skipping due to never_fail is set to True.") from exc
            raise
        except SkipTask:
            raise
        except Exception as exc:
            if self.silent_fail:
                print(f"Sensor poke failed:\n{traceback.format_exc()}", flush=True)
                return False
            if self.never_fail:
                raise SkipTask("Skipping due to never_fail is set to True.") from exc
            raise

    def next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        """Seconds until the next poke: ``poke_interval``, or with ``exponential_backoff`` Airflow's growing,
        jittered interval (capped by ``max_wait`` and by the time left before ``timeout``).

        In reschedule mode each poke runs in a new process, so the poke count is estimated from the time
        since the first poke by replaying the intervals (as Airflow does).
        """
        if not self.exponential_backoff:
            return self.poke_interval
        if self.reschedule:
            elapsed = run_duration()
            spent, estimated = 0.0, 0
            while spent <= elapsed:
                estimated += 1
                spent += self._backoff(started_at, estimated)
            poke_count = estimated or poke_count
        interval = min(self.timeout - int(run_duration()), self._backoff(started_at, poke_count))
        if self.max_wait:
            interval = min(self.max_wait, interval)
        interval = max(0.0, interval)
        print(f"new {self.mode} interval is {interval:g} s", flush=True)
        return interval

    def _backoff(self, started_at: datetime | float, poke_count: int) -> float:
        """``poke_interval * 2 ** (poke_count - 2)`` (at least 1 s) plus a jitter below that, derived from the
        task and the sensor's start so that sensors started together spread out, and a rerun repeats it."""
        floor = max(int(self.poke_interval * (2 ** (poke_count - 2))), 1)
        dag_id = self.dag.dag_id if self.dag is not None else ""
        key = f"{dag_id}#{self.task_id}#{started_at}#{poke_count}".encode()
        jitter = int(hashlib.sha1(key, usedforsecurity=False).hexdigest(), 16) % floor
        return float(min(floor + jitter, timedelta.max.total_seconds() - 1))


_S = TypeVar("_S", bound=type[BaseSensorOperator])


def poke_mode_only(cls: _S) -> _S:
    """Class decorator: the sensor is only safe in ``mode="poke"`` (Airflow's); another mode given to it raises
    ``DagDefinitionError`` naming the task."""
    cls.valid_modes = ("poke",)
    return cls


__all__ = ["DEFAULT_TIMEOUT", "VALID_MODES", "BaseSensorOperator", "PokeReturnValue", "poke_mode_only"]
