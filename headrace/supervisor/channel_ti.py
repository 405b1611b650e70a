"""What the task process knows of its try (:class:`TaskStart`), and the supervisor channel behind
``context["ti"]`` (:class:`ChannelTI`: XCom, skipping, triggering DAG runs, rendered fields, a mapped index's
items) and behind variables and connections (:class:`ChannelSecrets`).

Used by :mod:`headrace.supervisor.task_process`; like it, this module never touches the metadata database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headrace.authoring.context import RunInfo
from headrace.authoring.mapped_items import PickedItem, read_item
from headrace.authoring.secrets import SecretsUnavailable
from headrace.authoring.task import BaseOperator
from headrace.authoring.trigger_dagrun import TriggerDagRunError
from headrace.authoring.xcom import deserialize_xcom, deserialize_xcom_list, serialize_xcom
from headrace.authoring.xcom_backend import DEFAULT_XCOM_BACKEND, BaseXCom
from headrace.exceptions import HeadraceError, SecretsError, XComError
from headrace.masking import SecretMasker
from headrace.supervisor.protocol import (
    AssetEventsValue,
    ConnectionValue,
    DagRunStateValue,
    DagRunTriggered,
    Error,
    ExternalTaskStates,
    GetAssetEvents,
    GetConnection,
    GetDagRunState,
    GetExternalTaskStates,
    GetMappedItems,
    GetTaskRescheduleStartDate,
    GetVariable,
    GetXCom,
    MappedItems,
    SetRenderedFields,
    SetXCom,
    SkipTasks,
    TaskChannel,
    TaskRescheduleStartDate,
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
    allowed_deserialization_classes: str = "headrace.*"
    """``core.allowed_deserialization_classes``: glob patterns of the classes a pulled XCom may be rebuilt as."""
    allowed_deserialization_classes_regexp: str = ""
    """``core.allowed_deserialization_classes_regexp``: the same as regular expressions."""
    next_method: str | None = None
    """A deferred task resuming: the method to call instead of ``execute`` (``__fail__``: its trigger failed or
    timed out)."""
    next_kwargs: str | None = None
    """JSON text (XCom's types) of ``next_method``'s keyword arguments (the trigger's ``event``)."""


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
        self.rendered_map_index: str | None = None
        """The task's ``map_index_template`` as this try rendered it when its code ended (sent with ``TaskDone``)."""

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

    def mapped_items(self, specs: list[dict[str, Any]], map_index: int) -> list[PickedItem] | None:
        """The items at ``map_index`` of a mapped task's expand arguments, asked of the supervisor one by one
        (see ``GetMappedItems``); None: read the whole values instead. Raises ``XComError`` for a refusal."""
        default = self._backend.serialize_value is BaseXCom.serialize_value
        pick = default and self._backend.deserialize_value is BaseXCom.deserialize_value
        if self._channel is None:
            return None
        response = self._channel.request(GetMappedItems(specs=specs, map_index=map_index, pick=pick))
        if isinstance(response, Error):
            raise XComError(response.message)
        if not isinstance(response, MappedItems) or response.items is None:
            return None

        def decode(text: str, task_id: str, key: str, index: int) -> Any:
            return deserialize_xcom(
                text, self._backend, key=key, task_id=task_id, dag_id=self.dag_id, run_id=self.run_id, map_index=index
            )

        return [read_item(item, decode) for item in response.items]

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

    def get_first_reschedule_date(self, context: Context) -> datetime | None:
        """When this task instance's first poke in reschedule mode began, counting the tries since it was last
        cleared (Airflow's rule: a sensor's ``timeout`` spans its retries); None if no poke was rescheduled.

        Raises ``XComError`` when asked from a callback run after the task process ended.
        """
        if self._channel is None:
            raise XComError("the reschedule history is not available in callbacks run after the task process ended")
        task = context.get("task")
        retries = int(getattr(task, "retries", 0) or 0)
        response = self._channel.request(GetTaskRescheduleStartDate(try_number=max(1, self.max_tries - retries + 1)))
        if isinstance(response, Error):
            raise XComError(response.message)
        return response.start_date if isinstance(response, TaskRescheduleStartDate) else None

    def external_task_states(
        self,
        dag_id: str,
        logical_dates: Sequence[datetime],
        *,
        task_ids: Sequence[str] | None = None,
        task_group_id: str | None = None,
        check_existence: bool = False,
    ) -> dict[str, Any]:
        """The runs of ``dag_id`` at ``logical_dates`` and their task instances' states, as the supervisor read
        them: :class:`~headrace.supervisor.protocol.ExternalTaskStates`'s fields as a dict (the
        ExternalTaskSensor's poke). Raises ``HeadraceError`` when the supervisor could not read them."""
        if self._channel is None:
            raise HeadraceError("another DAG's states cannot be read from callbacks run after the task process ended")
        response = self._channel.request(
            GetExternalTaskStates(
                dag_id=dag_id,
                logical_dates=list(logical_dates),
                task_ids=None if task_ids is None else list(task_ids),
                task_group_id=task_group_id,
                check_existence=check_existence,
            )
        )
        if isinstance(response, Error):
            raise HeadraceError(response.message)
        if not isinstance(response, ExternalTaskStates):
            raise HeadraceError(f"unexpected answer to get_external_task_states: {response.type}")
        return {"runs": response.runs, "group_task_ids": response.group_task_ids, "missing": response.missing}

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
        """Send the task's rendered template fields (masked) to be recorded with the outcome (a notification:
        no answer is awaited)."""
        if self._channel is None or not task.template_fields:
            return
        fields = {name: rendered_field_text(getattr(task, name, None)) for name in task.template_fields}
        if self._masker is not None:
            fields = {name: self._masker.mask(text) for name, text in fields.items()}
        self._channel.send(SetRenderedFields(try_number=self.try_number, fields=fields))


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


__all__ = ["ChannelSecrets", "ChannelTI", "TaskStart"]
