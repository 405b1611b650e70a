"""Messages between a supervisor and its task process.

Transport: a ``socket.socketpair()`` (AF_UNIX, SOCK_STREAM) made by the
supervisor before it forks the task process; each side keeps one end.

Framing: newline-delimited JSON. Every message is one JSON object on one line
(``json.dumps`` never emits a raw newline), encoded as UTF-8, ending in
``\\n``. Each object has a ``type`` field naming its model below; pydantic
picks the model from it (a discriminated union).

Who speaks first: the task process. The supervisor never sends anything
unprompted; it answers each request with exactly one response, in order —
except ``SetRenderedFields``, a notification it answers with nothing (the task
goes on at once instead of waiting a round trip; the supervisor keeps the
fields and records them with the outcome):

* ``GetXCom`` → ``XComValue`` (or ``Error``), ``GetMappedItems`` → ``MappedItems`` (or ``Error``),
* ``GetVariable`` → ``VariableValue``, ``GetConnection`` → ``ConnectionValue``
  (or ``Error``; the values are decrypted plain text — the channel never
  leaves the machine, and the task process masks them in its log),
* ``SetXCom`` / ``SkipTasks`` / ``SetAssetEvents`` → ``Ack`` (or ``Error``); ``SetRenderedFields`` is a
  notification (no answer),
* ``GetAssetEvents`` → ``AssetEventsValue`` (or ``Error``),
* ``TriggerDagRun`` → ``DagRunTriggered``, ``GetDagRunState`` → ``DagRunStateValue`` (or ``Error``:
  the DAG is not found, its params refuse the conf, …),
* ``GetTaskRescheduleStartDate`` → ``TaskRescheduleStartDate`` (a sensor in reschedule mode: when its
  first poke began),
* ``GetExternalTaskStates`` → ``ExternalTaskStates`` (or ``Error``; the ExternalTaskSensor reading another
  DAG's runs),
* ``TaskDone`` → ``Ack``; it is the last message of a try.

So the task process can use it as a blocking request/response channel with
no message ids.

Failure semantics:

* The task process dies mid-request (killed, crashed): the supervisor reads
  EOF or a partial line, drops it, and decides the outcome from how the
  process ended (signal, exit code) — a try without a ``TaskDone`` never counts
  as a success.
* The supervisor is gone: the task process reads EOF (or gets ``EPIPE``) on its
  next request and raises :class:`SupervisorGone`; the task process then exits
  at once without running callbacks, since nobody could record the outcome.
  (The supervisor also puts the task process in its own process group and
  kills the group when it stops, so a task is never left running unwatched.)
* An ``Error`` response carries a message; the task process raises it as an
  exception in the task's code (e.g. ``XComError`` for a refused XCom).
"""

from __future__ import annotations

import json
import socket
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from headrace.exceptions import HeadraceError

MAX_LINE = 64 * 1024 * 1024
"""Longest accepted message line, in bytes (XCom values are far smaller; this guards memory)."""


class SupervisorGone(HeadraceError):
    """Raised in the task process when its supervisor closed the channel (it died or was killed)."""


class ProtocolError(HeadraceError):
    """Raised when a peer sends something that is not a valid message."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- task process → supervisor ------------------------------------------------


class GetXCom(_Message):
    """Ask for the XCom ``key`` of ``task_ids`` in this DAG run (or in the run of the same run_id of ``dag_id``).

    ``task_ids``: one id → the value; a list → a list of values (None for
    missing ones); None → the latest value of ``key`` pushed by any task of the run.
    ``map_indexes``: None → a mapped task's value is the list of its task instances' values by map index
    (absent when none pushed), an unmapped task's its one value; an int → the value of that map index.
    """

    type: Literal["get_xcom"] = "get_xcom"
    task_ids: str | list[str] | None = None
    key: str = "return_value"
    dag_id: str | None = None
    map_indexes: int | None = None


class GetMappedItems(_Message):
    """Ask for the items one map index of a mapped task reads from what it expands over, not whole values.

    ``specs``: per expanded argument (one for ``expand_kwargs``), how its items are counted and found
    (:func:`headrace.authoring.mapped_items.item_spec`): ``{"literal": n}``, ``{"xcom": task_id, "key": key,
    "mapped": bool}`` (``mapped``: the items are the values the task's instances pushed, by map index) or
    ``{"zip": [specs], "longest": bool}``. ``map_index`` is split over the arguments' lengths as the expansion
    does (a cross product, the last argument varying fastest). ``pick``: values are stored in the default
    encoding (:mod:`headrace.authoring.xcom_serde`), so one item may be cut out of a stored list or dict;
    false (a custom XCom backend) sends an unmapped task's whole stored value.
    """

    type: Literal["get_mapped_items"] = "get_mapped_items"
    specs: list[dict[str, Any]]
    map_index: int
    pick: bool = True


class SetXCom(_Message):
    """Store an XCom of this task instance; ``value_json`` is already serialized (``serialize_xcom``)."""

    type: Literal["set_xcom"] = "set_xcom"
    key: str
    value_json: str
    map_length: int | None = None
    """Set when a mapped task downstream maps over this value: its number of items (recorded in ``task_map``)."""
    map_keys: list[str] | None = None
    """The keys of a dict value mapped over, in order."""


class SkipTasks(_Message):
    """Mark task instances of this run ``skipped`` if they have not been queued yet."""

    type: Literal["skip_tasks"] = "skip_tasks"
    task_ids: list[str]


MAX_RENDERED_FIELD_CHARS = 4096
"""Longest rendered template field recorded, in characters (Airflow's ``max_templated_field_length`` default);
a longer one is cut and says so."""


def rendered_field_text(value: Any, max_chars: int = MAX_RENDERED_FIELD_CHARS) -> str:
    """A rendered template field as text: a string as it is, None as ``None``, anything else as indented JSON
    (or its ``repr``); cut to ``max_chars`` characters with a note saying how long it was."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "None"
    else:
        try:
            text = json.dumps(value, indent=2, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > max_chars:
        return f"{text[:max_chars]}\n… (cut: {len(text)} characters, the first {max_chars} recorded)"
    return text


class SetRenderedFields(_Message):
    """Record the task's template fields as this try rendered them (before ``execute``), for the UI.

    ``fields`` maps each template field's name to its text (:func:`rendered_field_text`), secrets the task
    fetched already masked. A later try of the task instance replaces them. A notification: sent with
    :meth:`TaskChannel.send`, never answered (:func:`is_notification`).
    """

    type: Literal["set_rendered_fields"] = "set_rendered_fields"
    try_number: int
    fields: dict[str, str]


class SetAssetEvents(_Message):
    """The asset events this try records if it succeeds (its outlets, ``outlet_events``); sent right before
    ``TaskDone``, written with the success (``authoring.asset_events.events_to_record`` shape)."""

    type: Literal["set_asset_events"] = "set_asset_events"
    events: list[dict[str, Any]]


class GetAssetEvents(_Message):
    """Ask for the recorded events of asset ``(name, uri)`` (``inlet_events``), oldest first."""

    type: Literal["get_asset_events"] = "get_asset_events"
    name: str
    uri: str


class GetVariable(_Message):
    """Ask for the value of variable ``key``."""

    type: Literal["get_variable"] = "get_variable"
    key: str


class GetConnection(_Message):
    """Ask for connection ``conn_id``."""

    type: Literal["get_connection"] = "get_connection"
    conn_id: str


class TriggerDagRun(_Message):
    """Create a manual run of ``dag_id`` (the TriggerDagRunOperator), its conf validated against the DAG's params.

    ``run_id`` None: ``manual__<logical date>``; ``logical_date`` None: now. When a run with that run id
    (or logical date) exists: ``reset_dag_run`` clears its task instances so they run again, else the
    answer says ``exists``. ``fail_when_dag_is_paused``: a paused DAG is an ``Error``.
    """

    type: Literal["trigger_dag_run"] = "trigger_dag_run"
    dag_id: str
    run_id: str | None = None
    conf: dict[str, Any] | None = None
    logical_date: datetime | None = None
    reset_dag_run: bool = False
    fail_when_dag_is_paused: bool = False


class GetDagRunState(_Message):
    """Ask for the state of run ``run_id`` of ``dag_id`` (the TriggerDagRunOperator waiting for its run)."""

    type: Literal["get_dag_run_state"] = "get_dag_run_state"
    dag_id: str
    run_id: str


class GetTaskRescheduleStartDate(_Message):
    """Ask when this task instance's first poke in reschedule mode began, over tries ``>= try_number`` (a sensor's
    ``timeout`` counts from it, Airflow's rule: ``try_number`` is the first try since the task was cleared)."""

    type: Literal["get_task_reschedule_start_date"] = "get_task_reschedule_start_date"
    try_number: int


class GetExternalTaskStates(_Message):
    """Ask for the runs of ``dag_id`` at ``logical_dates`` (UTC-aware) and the states of their task instances of
    ``task_ids`` or of the tasks of group ``task_group_id`` (neither: the runs' states only) — the
    ExternalTaskSensor's read. ``check_existence``: also say whether the DAG, its file, the tasks and the group
    exist (in its latest parsed version)."""

    type: Literal["get_external_task_states"] = "get_external_task_states"
    dag_id: str
    logical_dates: list[datetime]
    task_ids: list[str] | None = None
    task_group_id: str | None = None
    check_existence: bool = False


Outcome = Literal["success", "failed", "skipped", "retry", "fail_no_retry", "reschedule", "deferred"]
"""How the task's code ended: returned; raised; SkipTask; RetryTask; FailTask; RescheduleTask (a sensor's
unmet poke in reschedule mode); TaskDeferred (the task handed its wait to a trigger)."""


class Deferral(_Message):
    """What a task that deferred hands over (``TaskDeferred``): its trigger, serialized, and where it resumes."""

    classpath: str
    """The trigger's class, ``module.Name``."""
    kwargs: str
    """JSON text (XCom's types) of the trigger's keyword arguments."""
    method_name: str
    next_kwargs: str | None = None
    """JSON text (XCom's types) of the extra keyword arguments of ``method_name`` (None: none)."""
    timeout: float | None = None
    """Seconds the deferral may last (None: no limit)."""


class TaskDone(_Message):
    """The try is over as far as the task process can tell; last message it sends.

    ``outcome``: see :data:`Outcome`. ``error``: one-line message for a failure.
    ``retry_delay``: seconds, from ``RetryTask(delay=…)``. ``started`` is False
    when the task never ran (the DAG file would not import, the task was not
    found): the try ends with reason ``not_started``. ``rendered_map_index``: see below.
    """

    type: Literal["task_done"] = "task_done"
    outcome: Outcome
    error: str | None = None
    retry_delay: float | None = None
    started: bool = True
    rendered_map_index: str | None = None
    """The task's ``map_index_template`` rendered at the end of its code (None: no template, or not rendered)."""
    reschedule_date: datetime | None = None
    """With outcome ``reschedule``: when the next poke is due (UTC-aware)."""
    deferral: Deferral | None = None
    """With outcome ``deferred``: the trigger and where to resume."""


# --- supervisor → task process -------------------------------------------------


class XComValue(_Message):
    """Answer to ``GetXCom``: the serialized value (JSON text), or None when there is none."""

    type: Literal["xcom_value"] = "xcom_value"
    value_json: str | None
    map_indexes: list[list[int] | None] | None = None
    """Per task asked (one for a single task id): None for one stored value, or the map indexes of the items
    of a mapped task's list, so the task process gives a custom XCom backend one value at a time."""


class MappedItems(_Message):
    """Answer to ``GetMappedItems``: per spec, the item of this map index, or None for the task process to read
    whole values instead (a length it cannot tell, a value that is not a list or dict, an index past the end).

    An item is ``{"index": i}`` (i: its position in the argument's items; a literal is read by the task
    process), plus for an XCom ``"task_id"``, ``"key"``, ``"map_index"`` (of the stored row) and
    ``"value_json"``: the item in stored form, or with ``"whole": true`` the stored value it is item ``i`` of;
    for a zip ``"parts"``: one item per zipped value (None: past its end, the fill value).
    """

    type: Literal["mapped_items"] = "mapped_items"
    items: list[dict[str, Any]] | None


class VariableValue(_Message):
    """Answer to ``GetVariable``: the plain-text value, or None when there is no such variable."""

    type: Literal["variable_value"] = "variable_value"
    value: str | None


class ConnectionValue(_Message):
    """Answer to ``GetConnection``: its fields (``Connection.to_dict`` shape, password in plain text), or None."""

    type: Literal["connection_value"] = "connection_value"
    connection: dict[str, Any] | None


class DagRunTriggered(_Message):
    """Answer to ``TriggerDagRun``: the run's id and logical date, and whether it was ``created``,
    ``cleared`` (it existed; ``reset_dag_run``) or already ``exists`` (left alone)."""

    type: Literal["dag_run_triggered"] = "dag_run_triggered"
    run_id: str
    logical_date: datetime | None
    outcome: Literal["created", "cleared", "exists"]


class DagRunStateValue(_Message):
    """Answer to ``GetDagRunState``: the run's state, or None when there is no such run."""

    type: Literal["dag_run_state"] = "dag_run_state"
    state: str | None


class TaskRescheduleStartDate(_Message):
    """Answer to ``GetTaskRescheduleStartDate``: the first poke's start (None: the task was not rescheduled)."""

    type: Literal["task_reschedule_start_date"] = "task_reschedule_start_date"
    start_date: datetime | None


class AssetEventsValue(_Message):
    """Answer to ``GetAssetEvents``: the events (``AssetEventInfo.from_dict`` shape), oldest first."""

    type: Literal["asset_events"] = "asset_events"
    events: list[dict[str, Any]]


class ExternalTaskStates(_Message):
    """Answer to ``GetExternalTaskStates``.

    ``runs``: one per run found at the dates asked, ``{"logical_date": ISO 8601, "run_id", "state",
    "task_instances": [[task_id, map_index, state], ...]}`` (task instances only when tasks or a group were
    asked). ``group_task_ids``: per run id, the task ids of the group in that run's DAG version (absent: the
    version has no such group). With ``check_existence``: ``missing``, the first thing that does not exist, as
    ``["dag" | "dag_file" | "task" | "task_group", name]``, or None.
    """

    type: Literal["external_task_states"] = "external_task_states"
    runs: list[dict[str, Any]]
    group_task_ids: dict[str, list[str]] = Field(default_factory=dict)
    missing: list[str] | None = None


class Ack(_Message):
    """Answer to a request that returns nothing: done."""

    type: Literal["ack"] = "ack"


class Error(_Message):
    """Answer to a request the supervisor refused or could not serve."""

    type: Literal["error"] = "error"
    message: str


Request = (
    GetXCom
    | GetMappedItems
    | SetXCom
    | SkipTasks
    | SetRenderedFields
    | SetAssetEvents
    | GetAssetEvents
    | GetVariable
    | GetConnection
    | TriggerDagRun
    | GetDagRunState
    | GetTaskRescheduleStartDate
    | GetExternalTaskStates
    | TaskDone
)
"""Any message the task process sends."""
Response = (
    XComValue
    | MappedItems
    | VariableValue
    | ConnectionValue
    | DagRunTriggered
    | DagRunStateValue
    | TaskRescheduleStartDate
    | ExternalTaskStates
    | AssetEventsValue
    | Ack
    | Error
)
"""Any message the supervisor sends."""

TaskRequest = Annotated[Request, Field(discriminator="type")]
SupervisorResponse = Annotated[Response, Field(discriminator="type")]

_REQUEST: TypeAdapter[Request] = TypeAdapter(TaskRequest)
_RESPONSE: TypeAdapter[Response] = TypeAdapter(SupervisorResponse)


def encode(message: BaseModel) -> bytes:
    """One message as a line of JSON (with the newline)."""
    return message.model_dump_json().encode("utf-8") + b"\n"


def decode_request(line: bytes) -> Request:
    """Parse one line from the task process. Raises ``ProtocolError``."""
    try:
        return _REQUEST.validate_json(line)
    except (ValidationError, ValueError) as exc:
        raise ProtocolError(f"bad message from task process: {exc}") from None


def is_notification(line: bytes) -> bool:
    """Whether ``line`` is a message the supervisor must not answer (``SetRenderedFields``), even one that
    failed to decode: an answer nobody waits for would be read as the answer to the next request."""
    try:
        data = json.loads(line)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "set_rendered_fields"


def decode_response(line: bytes) -> Response:
    """Parse one line from the supervisor. Raises ``ProtocolError``."""
    try:
        return _RESPONSE.validate_json(line)
    except (ValidationError, ValueError) as exc:
        raise ProtocolError(f"bad message from supervisor: {exc}") from None


class LineBuffer:
    """Splits bytes read from a non-blocking socket into complete lines."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the complete lines (without newline). Raises ``ProtocolError`` past MAX_LINE."""
        self._buf += data
        lines: list[bytes] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            lines.append(bytes(self._buf[:end]))
            del self._buf[: end + 1]
        if len(self._buf) > MAX_LINE:
            raise ProtocolError(f"message longer than {MAX_LINE} bytes")
        return lines


class TaskChannel:
    """The task process's end: blocking request → response calls.

    Raises ``SupervisorGone`` when the supervisor's end is closed.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._file = sock.makefile("rb")

    def send(self, message: SetRenderedFields) -> None:
        """Send a notification (no response comes). Raises ``SupervisorGone`` if the supervisor is gone."""
        try:
            self._sock.sendall(encode(message))
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise SupervisorGone(f"supervisor went away: {exc}") from None

    def request(self, message: Request) -> Response:
        """Send ``message`` and wait for its response."""
        try:
            self._sock.sendall(encode(message))
            line = self._file.readline(MAX_LINE)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise SupervisorGone(f"supervisor went away: {exc}") from None
        if not line.endswith(b"\n"):
            raise SupervisorGone("supervisor went away (end of channel)")
        return decode_response(line)


def dumps_value_list(values: list[str | None]) -> str:
    """Join serialized XCom values into the serialized form of their list (None → null)."""
    return "[" + ",".join(v if v is not None else "null" for v in values) + "]"


__all__ = [
    "Ack",
    "AssetEventsValue",
    "GetAssetEvents",
    "SetAssetEvents",
    "ConnectionValue",
    "DagRunStateValue",
    "DagRunTriggered",
    "Error",
    "GetDagRunState",
    "GetExternalTaskStates",
    "ExternalTaskStates",
    "GetConnection",
    "GetMappedItems",
    "GetVariable",
    "GetXCom",
    "MAX_RENDERED_FIELD_CHARS",
    "LineBuffer",
    "MappedItems",
    "Outcome",
    "ProtocolError",
    "Request",
    "Response",
    "SetRenderedFields",
    "SetXCom",
    "SkipTasks",
    "SupervisorGone",
    "TaskChannel",
    "TaskDone",
    "TriggerDagRun",
    "VariableValue",
    "XComValue",
    "decode_request",
    "decode_response",
    "dumps_value_list",
    "encode",
    "is_notification",
    "rendered_field_text",
]
