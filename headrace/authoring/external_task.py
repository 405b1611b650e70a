"""Cross-DAG dependencies by logical date: ``ExternalTaskSensor`` waits for another DAG (or some of its tasks,
or a task group) to reach a state; ``ExternalTaskMarker`` makes clearing a task clear the dependent tasks of
another DAG. Airflow's arguments and meaning; import them from ``headrace.sensors``.

The sensor reads the other DAG through its supervisor (the task process never touches the database): the
runs of ``external_dag_id`` whose logical date is one of the dates it looks at, and the states of their task
instances. Which dates: the sensor's own run's logical date; minus ``execution_delta``; or what
``execution_date_fn(logical_date, **context)`` returns (one datetime or a list).

A poke decides, in this order (Airflow's; :mod:`headrace.authoring.external_states`, shared with the
deferrable sensor's trigger):

1. ``failed_states`` (default none): if any task instance asked for (any run, for a whole-DAG wait) is in
   one, the sensor fails (``ExternalTaskFailedError`` / ``ExternalTaskGroupFailedError`` /
   ``ExternalDagFailedError``), or is skipped with ``soft_fail``.
2. ``skipped_states`` (default none): likewise, the sensor is skipped.
3. ``allowed_states`` (default ``["success"]``): done when, at every date, there is a run and every task
   asked (every task instance of it: all map indexes; every task of the group) is in one of them — for a
   whole-DAG wait, when the run is in one of them.

States are task instance states when a task or group is named, DAG run states otherwise (``DagDefinitionError``
for another, or for a state given in two lists).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from headrace.authoring.context import context_kwargs
from headrace.authoring.external_states import FAILED, SKIPPED, SUCCESS, external_status
from headrace.authoring.operators import EmptyOperator
from headrace.authoring.schedules import ensure_aware
from headrace.authoring.sensors import BaseSensorOperator
from headrace.authoring.triggers import WorkflowTrigger
from headrace.exceptions import DagDefinitionError, HeadraceError, SkipTask
from headrace.states import DagRunState, TaskInstanceState
from headrace.types import Context

TASK_STATES = frozenset(s.value for s in TaskInstanceState)
DAG_RUN_STATES = frozenset(s.value for s in DagRunState)


class ExternalTaskError(HeadraceError):
    """Raised by an ExternalTaskSensor about the DAG it waits for; root of the errors below."""


class ExternalDagNotFoundError(ExternalTaskError):
    """Raised (with ``check_existence``) when the DAG waited for is not known."""


class ExternalDagDeletedError(ExternalTaskError):
    """Raised (with ``check_existence``) when the file of the DAG waited for is gone."""


class ExternalTaskNotFoundError(ExternalTaskError):
    """Raised (with ``check_existence``) when a task waited for is not in the DAG."""


class ExternalTaskGroupNotFoundError(ExternalTaskError):
    """Raised (with ``check_existence``) when the task group waited for is not in the DAG."""


class ExternalTaskFailedError(ExternalTaskError):
    """Raised when a task waited for reached one of ``failed_states``."""


class ExternalTaskGroupFailedError(ExternalTaskError):
    """Raised when a task of the group waited for reached one of ``failed_states``."""


class ExternalDagFailedError(ExternalTaskError):
    """Raised when the DAG run waited for reached one of ``failed_states``."""


def _state_list(values: Iterable[Any] | None, default: list[str]) -> list[str]:
    if not values:
        return list(default)
    if isinstance(values, str):
        values = [values]
    return [str(getattr(v, "value", v)) for v in values]


class ExternalTaskSensor(BaseSensorOperator):
    """Wait for a task, some tasks, a task group or a whole run of another DAG at a logical date (see the module
    docstring for the rules).

    ``external_dag_id``, ``external_task_id``, ``external_task_ids`` and ``external_task_group_id`` are
    templated. ``external_task_id`` and ``external_task_ids`` are exclusive, and so are they and
    ``external_task_group_id``; none of them: the whole DAG run. ``execution_delta`` (a timedelta: how far
    back) and ``execution_date_fn`` (called with the logical date and the context keys it names; returns a
    datetime or a list of them) are exclusive. ``check_existence``: fail at once
    (``ExternalDagNotFoundError`` …) when the DAG, its file, a task or the group does not exist.
    ``deferrable=True``: after one poke, the wait goes to the triggerer (a :class:`WorkflowTrigger` reading the
    same states every ``poll_interval`` seconds, for at most ``timeout``), with no process meanwhile; the task
    resumes in :meth:`execute_complete`, which decides as a poke does. Every other argument is
    ``BaseSensorOperator``'s.
    Raises ``DagDefinitionError`` naming the task for arguments that do not fit together.
    """

    template_fields: Sequence[str] = (
        "external_dag_id",
        "external_task_id",
        "external_task_ids",
        "external_task_group_id",
    )
    ui_color = "#4db7db"

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        external_task_ids: Collection[str] | None = None,
        external_task_group_id: str | None = None,
        allowed_states: Iterable[str] | None = None,
        skipped_states: Iterable[str] | None = None,
        failed_states: Iterable[str] | None = None,
        execution_delta: timedelta | None = None,
        execution_date_fn: Callable[..., datetime | list[datetime]] | None = None,
        check_existence: bool = False,
        poll_interval: float = 2.0,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = f"task {self.task_id!r}"
        if not isinstance(external_dag_id, str) or not external_dag_id:
            raise DagDefinitionError(f"{name}: external_dag_id must be a non-empty string")
        self.allowed_states = _state_list(allowed_states, [TaskInstanceState.SUCCESS.value])
        self.skipped_states = _state_list(skipped_states, [])
        self.failed_states = _state_list(failed_states, [])
        every = self.allowed_states + self.skipped_states + self.failed_states
        if len(set(every)) != len(every):
            raise DagDefinitionError(
                f"{name}: duplicate values provided across allowed_states, skipped_states and failed_states"
            )
        ids = list(external_task_ids) if external_task_ids else None
        if isinstance(external_task_ids, str):
            raise DagDefinitionError(f"{name}: external_task_ids must be a list of task ids, not a string")
        if external_task_id is not None and ids is not None:
            raise DagDefinitionError(
                f"{name}: only one of external_task_id or external_task_ids may be given "
                "(or external_task_group_id instead of both)"
            )
        if external_task_id is not None:
            ids = [external_task_id]
        if external_task_group_id is not None and ids is not None:
            raise DagDefinitionError(f"{name}: only one of external_task_group_id or external_task_id(s) may be given")
        known = TASK_STATES if ids or external_task_group_id is not None else DAG_RUN_STATES
        bad = sorted(set(every) - known)
        if bad:
            what = "task instance states" if known is TASK_STATES else "DAG run states (no task or group is named)"
            raise DagDefinitionError(
                f"{name}: {bad} are not {what}; allowed_states, skipped_states and failed_states take {sorted(known)}"
            )
        if execution_delta is not None and execution_date_fn is not None:
            raise DagDefinitionError(f"{name}: only one of execution_delta or execution_date_fn may be given")
        if execution_delta is not None and not isinstance(execution_delta, timedelta):
            raise DagDefinitionError(f"{name}: execution_delta must be a timedelta, got {execution_delta!r}")
        if execution_date_fn is not None and not callable(execution_date_fn):
            raise DagDefinitionError(f"{name}: execution_date_fn must be callable")
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.external_task_ids = ids
        self.external_task_group_id = external_task_group_id
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn
        self.check_existence = check_existence
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self._has_checked_existence = False
        self.external_dates_filter: str | None = None
        """The dates the last poke looked at, ISO 8601 joined by commas (Airflow's attribute)."""

    def external_reference(self) -> dict[str, Any]:
        """What the DAG page links: this DAG waits on ``external_dag_id`` (upstream)."""
        return {"kind": "sensor", "dag_id": self.external_dag_id}

    def _logical_date(self, context: Context) -> datetime:
        logical = context.get("logical_date")
        if logical is None:
            raise HeadraceError(f"task {self.task_id!r}: the context has no logical_date to wait on")
        return ensure_aware(logical)

    def logical_dates(self, context: Context) -> list[datetime]:
        """The logical dates of the other DAG's runs this poke looks at (UTC-aware). Raises ``TypeError`` when
        ``execution_date_fn`` returns something else than a datetime or a list of them."""
        logical = self._logical_date(context)
        if self.execution_delta is not None:
            return [logical - self.execution_delta]
        if self.execution_date_fn is None:
            return [logical]
        given = {k: v for k, v in context.items() if k not in ("logical_date", "execution_date")}
        given["context"] = context
        result = self.execution_date_fn(logical, **context_kwargs(self.execution_date_fn, given))
        dates = result if isinstance(result, (list, tuple)) else [result]
        for date in dates:
            if not isinstance(date, datetime):
                raise TypeError(
                    f"task {self.task_id!r}: execution_date_fn must return a datetime or a list of them, "
                    f"got {type(date).__name__}"
                )
        return [ensure_aware(d) for d in dates]

    def poke(self, context: Context) -> bool:
        """Ask the supervisor for the other DAG's runs at :meth:`logical_dates` and decide (module docstring).

        Raises the ``External…Error`` above, ``SkipTask`` for ``skipped_states`` (and ``failed_states`` with
        ``soft_fail``), ``HeadraceError`` when ``context["ti"]`` cannot read other DAGs (a supervisor's and
        ``headrace tasks test``'s can).
        """
        ids = list(self.external_task_ids) if self.external_task_ids else None
        if ids is not None and len(ids) > len(set(ids)):
            raise ValueError("Duplicate task_ids passed in external_task_ids parameter")
        dates = self.logical_dates(context)
        self.external_dates_filter = ",".join(d.isoformat() for d in dates)
        if ids:
            print(
                f"Poking for tasks {ids} in dag {self.external_dag_id} on {self.external_dates_filter} ...", flush=True
            )
        elif self.external_task_group_id:
            print(
                f"Poking for task_group '{self.external_task_group_id}' in dag '{self.external_dag_id}' "
                f"on {self.external_dates_filter} ...",
                flush=True,
            )
        else:
            print(f"Poking for DAG '{self.external_dag_id}' on {self.external_dates_filter} ...", flush=True)
        ask = getattr(context["ti"], "external_task_states", None)
        if ask is None:
            raise HeadraceError(f"task {self.task_id!r} can read another DAG's runs only when run by a supervisor")
        answer: dict[str, Any] = ask(
            self.external_dag_id,
            dates,
            task_ids=ids,
            task_group_id=self.external_task_group_id,
            check_existence=bool(self.check_existence and not self._has_checked_existence),
        )
        self._raise_missing(answer.get("missing"))
        self._has_checked_existence = True
        status = external_status(
            answer,
            task_ids=ids,
            task_group_id=self.external_task_group_id,
            allowed_states=self.allowed_states,
            skipped_states=self.skipped_states,
            failed_states=self.failed_states,
            date_count=len(dates),
        )
        self._decide(status)
        return status == SUCCESS

    def execute(self, context: Context) -> Any:
        """Poke (see ``BaseSensorOperator``); with ``deferrable=True``, one poke, then a :class:`WorkflowTrigger`
        reading the same states in the triggerer every ``poll_interval`` seconds, for at most ``timeout``."""
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=WorkflowTrigger(
                external_dag_id=self.external_dag_id,
                logical_dates=self.logical_dates(context),
                external_task_ids=self.external_task_ids,
                external_task_group_id=self.external_task_group_id,
                allowed_states=self.allowed_states,
                skipped_states=self.skipped_states,
                failed_states=self.failed_states,
                poke_interval=self.poll_interval,
                soft_fail=self.soft_fail,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Resumed by the :class:`WorkflowTrigger`: decide from its ``{"status": ...}`` as a poke does (failed →
        the ``External…FailedError``, or skipped with ``soft_fail``; skipped → skipped; success → done). Raises
        ``HeadraceError`` for another event."""
        status = event.get("status") if isinstance(event, dict) else None
        if status not in (FAILED, SKIPPED, SUCCESS):
            raise HeadraceError(f"task {self.task_id!r}: unexpected event from its trigger: {event!r}")
        self._decide(status)
        print(
            f"The wait on DAG {self.external_dag_id!r} is over: allowed states {self.allowed_states} reached.",
            flush=True,
        )

    def _decide(self, status: str | None) -> None:
        """Raise what ``status`` means: the failure (or ``SkipTask`` with ``soft_fail``), or ``SkipTask``."""
        if status == FAILED:
            self._failed()
        if status == SKIPPED:
            raise SkipTask(f"{self._what()} reached a state in our states-to-skip-on list. Skipping.")

    def _what(self) -> str:
        if self.external_task_ids:
            return f"Some of the external tasks {self.external_task_ids} in DAG {self.external_dag_id}"
        if self.external_task_group_id:
            return f"The external task_group '{self.external_task_group_id}' in DAG '{self.external_dag_id}'"
        return f"The external DAG {self.external_dag_id}"

    def _failed(self) -> None:
        message = f"{self._what()} failed."
        if self.soft_fail:
            raise SkipTask(f"{message} Skipping due to soft_fail.")
        if self.external_task_ids:
            raise ExternalTaskFailedError(message)
        if self.external_task_group_id:
            raise ExternalTaskGroupFailedError(message)
        raise ExternalDagFailedError(message)

    def _raise_missing(self, missing: list[str] | None) -> None:
        if not missing:
            return
        kind, value = missing[0], missing[1]
        dag = self.external_dag_id
        if kind == "dag":
            raise ExternalDagNotFoundError(f"The external DAG {dag} does not exist.")
        if kind == "dag_file":
            raise ExternalDagDeletedError(f"The external DAG {dag} was deleted.")
        if kind == "task":
            raise ExternalTaskNotFoundError(f"The external task {value} in DAG {dag} does not exist.")
        raise ExternalTaskGroupNotFoundError(f"The external task group '{value}' in DAG '{dag}' does not exist.")


class ExternalTaskMarker(EmptyOperator):
    """Marks that a task of another DAG depends on this one: clearing this task (with its downstream, from the
    CLI's ``tasks clear``, the API's ``clearTaskInstances`` or the UI) also clears ``external_task_id`` of
    ``external_dag_id`` in the run at ``logical_date``, with that task's downstream tasks — and so on through
    their own markers, at most ``recursion_depth`` levels deep (10). Running it does nothing.

    ``external_dag_id``, ``external_task_id`` and ``logical_date`` (default ``"{{ logical_date.isoformat() }}"``:
    the child run has the same logical date) are templated; ``execution_date`` is Airflow 2's name for
    ``logical_date``. Raises ``DagDefinitionError`` naming the task for a ``logical_date`` that is not a str or
    datetime, or a ``recursion_depth`` that is not a positive integer.
    """

    template_fields: Sequence[str] = ("external_dag_id", "external_task_id", "logical_date")
    ui_color = "#4db7db"

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str,
        logical_date: str | datetime | None = "{{ logical_date.isoformat() }}",
        recursion_depth: int = 10,
        execution_date: str | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = f"task {self.task_id!r}"
        if execution_date is not None:
            logical_date = execution_date
        if isinstance(logical_date, datetime):
            self.logical_date = ensure_aware(logical_date).isoformat()
        elif isinstance(logical_date, str):
            self.logical_date = logical_date
        else:
            raise DagDefinitionError(
                f"{name}: logical_date must be a str or a datetime, got {type(logical_date).__name__}"
            )
        if not isinstance(recursion_depth, int) or isinstance(recursion_depth, bool) or recursion_depth <= 0:
            raise DagDefinitionError(f"{name}: recursion_depth should be a positive integer, got {recursion_depth!r}")
        for field, value in (("external_dag_id", external_dag_id), ("external_task_id", external_task_id)):
            if not isinstance(value, str) or not value:
                raise DagDefinitionError(f"{name}: {field} must be a non-empty string")
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.recursion_depth = recursion_depth

    @property
    def execution_date(self) -> str:
        """Airflow 2's name of :attr:`logical_date`."""
        return self.logical_date

    def external_reference(self) -> dict[str, Any]:
        """What clearing and the DAG page use: the marked task of another DAG (downstream)."""
        return {
            "kind": "marker",
            "dag_id": self.external_dag_id,
            "task_id": self.external_task_id,
            "logical_date": self.logical_date,
            "recursion_depth": self.recursion_depth,
        }


__all__ = [
    "ExternalDagDeletedError",
    "ExternalDagFailedError",
    "ExternalDagNotFoundError",
    "ExternalTaskError",
    "ExternalTaskFailedError",
    "ExternalTaskGroupFailedError",
    "ExternalTaskGroupNotFoundError",
    "ExternalTaskMarker",
    "ExternalTaskNotFoundError",
    "ExternalTaskSensor",
]
