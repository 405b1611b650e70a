"""``TriggerDagRunOperator``: a task that creates a run of another DAG (Airflow's, same arguments and meaning).

The run is made by the try's supervisor, not by the task process (which never touches the
database): the task asks over its channel, and the supervisor creates a manual run through the
same path as ``headrace dags trigger`` and the API, so the DAG's params validate ``conf`` and a
refusal fails the task with the reason. Import it from ``headrace.operators``.

XComs pushed (Airflow's keys): ``trigger_dag_id``, ``trigger_run_id`` and ``trigger_logical_date_iso``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from headrace.authoring.schedules import ensure_aware
from headrace.authoring.task import BaseOperator
from headrace.authoring.triggers import DagStateTrigger
from headrace.exceptions import DagDefinitionError, DagRunAlreadyExists, HeadraceError, SkipTask
from headrace.states import DagRunState
from headrace.types import Context

XCOM_LOGICAL_DATE_ISO = "trigger_logical_date_iso"
XCOM_RUN_ID = "trigger_run_id"
XCOM_DAG_ID = "trigger_dag_id"


class TriggerDagRunError(HeadraceError):
    """Raised in a task when its DAG run could not be triggered (the supervisor's reason) or ended in a failed state."""


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()
"""``logical_date`` not given: the triggered run's logical date is now."""


def _states(values: Sequence[str], name: str, task_id: str) -> list[str]:
    known = {s.value for s in DagRunState}
    states = [str(getattr(v, "value", v)) for v in values]
    bad = [s for s in states if s not in known]
    if bad:
        raise DagDefinitionError(
            f"task {task_id!r}: {name} has {bad}, which are not DAG run states (known: {', '.join(sorted(known))})"
        )
    return states


class TriggerDagRunOperator(BaseOperator):
    """Trigger a run of ``trigger_dag_id``.

    ``trigger_run_id`` (default ``manual__<logical date>``), ``conf`` (a JSON object, validated by
    the DAG's params) and ``logical_date`` (datetime or ISO 8601 string; default now) are
    templated. When a run with that id or logical date exists: ``reset_dag_run=True`` clears its
    task instances so it runs again; else ``skip_when_already_exists=True`` skips this task; else
    the task fails with ``DagRunAlreadyExists``. ``wait_for_completion=True`` polls the run's state
    every ``poke_interval`` seconds in the task process until it is in ``allowed_states`` (default
    ``["success"]``: the task succeeds) or ``failed_states`` (default ``["failed"]``: the task fails
    with ``TriggerDagRunError``). ``fail_when_dag_is_paused=True`` fails the task when the DAG is
    paused. ``deferrable=True`` with ``wait_for_completion``: the wait goes to the triggerer (a
    :class:`~headrace.authoring.triggers.DagStateTrigger` polling every ``poke_interval``), with no process
    meanwhile; the task resumes in :meth:`execute_complete`. Raises ``DagDefinitionError`` naming the task for a bad argument.
    """

    template_fields: Sequence[str] = (
        "trigger_dag_id",
        "trigger_run_id",
        "logical_date",
        "conf",
        "wait_for_completion",
        "skip_when_already_exists",
    )
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str | None = None,
        conf: dict[str, Any] | None = None,
        logical_date: str | datetime | None = NOTSET,
        reset_dag_run: bool = False,
        wait_for_completion: bool = False,
        poke_interval: float = 60,
        allowed_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        skip_when_already_exists: bool = False,
        fail_when_dag_is_paused: bool = False,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        if not isinstance(trigger_dag_id, str) or not trigger_dag_id:
            raise DagDefinitionError(f"task {self.task_id!r}: trigger_dag_id must be a non-empty string")
        if logical_date is not NOTSET and logical_date is not None and not isinstance(logical_date, (str, datetime)):
            raise DagDefinitionError(
                f"task {self.task_id!r}: logical_date must be a str, a datetime or None, "
                f"got {type(logical_date).__name__}"
            )
        if not isinstance(poke_interval, (int, float)) or poke_interval < 0:
            raise DagDefinitionError(f"task {self.task_id!r}: poke_interval must be seconds ≥ 0, got {poke_interval!r}")
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.logical_date = logical_date
        self.reset_dag_run = reset_dag_run
        self.wait_for_completion = wait_for_completion
        self.poke_interval = float(poke_interval)
        # Airflow's defaults: an empty allowed_states means [success]; failed_states=[] means none fail the task
        self.allowed_states = _states(allowed_states or [DagRunState.SUCCESS.value], "allowed_states", self.task_id)
        self.failed_states = _states(
            [DagRunState.FAILED.value] if failed_states is None else failed_states, "failed_states", self.task_id
        )
        self.skip_when_already_exists = skip_when_already_exists
        self.fail_when_dag_is_paused = fail_when_dag_is_paused

    def external_reference(self) -> dict[str, Any]:
        """What the DAG page links: this DAG triggers ``trigger_dag_id`` (downstream)."""
        return {"kind": "trigger", "dag_id": self.trigger_dag_id}

    def _parsed_logical_date(self) -> datetime | None:
        value = self.logical_date
        if value is NOTSET or value is None:
            return None
        if isinstance(value, datetime):
            return ensure_aware(value)
        try:
            return ensure_aware(datetime.fromisoformat(str(value)))
        except ValueError:
            raise ValueError(f"logical_date of task {self.task_id!r} is not an ISO 8601 date: {value!r}") from None

    def execute(self, context: Context) -> None:
        """Trigger the run (and wait for it if asked). Raises as described in the class docstring."""
        try:
            json.dumps(self.conf)
        except (TypeError, ValueError):
            raise ValueError("conf parameter should be JSON Serializable") from None
        ti = context["ti"]
        trigger = getattr(ti, "trigger_dag_run", None)
        if trigger is None:
            raise TriggerDagRunError(
                f"task {self.task_id!r} can trigger DAG runs only when run by a supervisor (a scheduled try)"
            )
        ti.xcom_push(XCOM_DAG_ID, self.trigger_dag_id)
        answer = trigger(
            dag_id=self.trigger_dag_id,
            run_id=str(self.trigger_run_id) if self.trigger_run_id else None,
            conf=self.conf,
            logical_date=self._parsed_logical_date(),
            reset_dag_run=bool(self.reset_dag_run),
            fail_when_dag_is_paused=bool(self.fail_when_dag_is_paused),
        )
        if answer.outcome == "exists":
            if _truthy(self.skip_when_already_exists):
                raise SkipTask("Skipping due to skip_when_already_exists is set to True and DagRunAlreadyExists")
            raise DagRunAlreadyExists(
                f"A DAG run already exists for DAG {self.trigger_dag_id} with run id {answer.run_id}",
                dag_id=self.trigger_dag_id,
                run_id=answer.run_id,
            )
        verb = "Cleared" if answer.outcome == "cleared" else "Triggered"
        print(f"{verb} DAG run {answer.run_id} of {self.trigger_dag_id}", flush=True)
        ti.xcom_push(XCOM_RUN_ID, answer.run_id)
        if answer.logical_date is not None:
            ti.xcom_push(XCOM_LOGICAL_DATE_ISO, answer.logical_date.isoformat())
        if _truthy(self.wait_for_completion):
            if self.deferrable:
                self.defer(
                    trigger=DagStateTrigger(
                        dag_id=self.trigger_dag_id,
                        states=[*self.allowed_states, *self.failed_states],
                        run_ids=[answer.run_id],
                        poll_interval=self.poke_interval,
                    ),
                    method_name="execute_complete",
                )
            self._wait(ti, answer.run_id)

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Resumed by the :class:`DagStateTrigger`: succeed if the run ended in ``allowed_states``, else raise
        ``TriggerDagRunError`` naming its state."""
        states = dict(event or {})
        for run_id in states.get("run_ids", []):
            state = states.get(run_id)
            if state in self.failed_states or state not in self.allowed_states:
                raise TriggerDagRunError(
                    f"{self.trigger_dag_id} run {run_id} ended {state} (failed_states {self.failed_states})"
                )
            print(f"{self.trigger_dag_id} run {run_id} finished with allowed state {state}", flush=True)

    def _wait(self, ti: Any, run_id: str) -> None:
        while True:
            print(
                f"Waiting for {self.trigger_dag_id} on {run_id} to become allowed state {self.allowed_states} ...",
                flush=True,
            )
            time.sleep(self.poke_interval)
            state = ti.dag_run_state(self.trigger_dag_id, run_id)
            if state is None:
                raise TriggerDagRunError(f"the run {run_id} of {self.trigger_dag_id} no longer exists")
            if state in self.failed_states:
                raise TriggerDagRunError(f"{self.trigger_dag_id} failed with failed states {state}")
            if state in self.allowed_states:
                print(f"{self.trigger_dag_id} finished with allowed state {state}", flush=True)
                return


def _truthy(value: object) -> bool:
    """A templated flag: a rendered string ``"False"`` / ``"0"`` / ``""`` is false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none")
    return bool(value)


__all__ = [
    "NOTSET",
    "XCOM_DAG_ID",
    "XCOM_LOGICAL_DATE_ISO",
    "XCOM_RUN_ID",
    "TriggerDagRunError",
    "TriggerDagRunOperator",
]
