"""Request and response bodies of the REST API (pydantic models), named after Airflow's stable REST API.

Responses: one model per resource (``DAG``, ``DAGRun``, ``TaskInstance``, …)
and a collection per list endpoint, ``{"<plural>": [...], "total_entries": N}``.
Datetimes are ISO 8601 in UTC; durations in seconds; memory in bytes.

Requests: text fields refuse NUL characters (PostgreSQL cannot store them)
and are capped at their column's size; datetimes without a timezone are
taken as UTC; integers are bounded by their column (32-bit).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from headrace.authoring.dag_warnings import UNSUPPORTED_ARGUMENT, UNUSED_DEFAULT_ARG
from headrace.exceptions import InvalidRequest

INT32_MAX = 2**31 - 1


# --- request value checks -------------------------------------------------------------


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime out of range once converted to UTC") from None


def check_json_value(value: Any, depth: int = 0) -> Any:
    """Check that ``value`` is plain JSON PostgreSQL can store: no NaN/Infinity, no NUL characters."""
    if depth > 64:
        raise ValueError("nested too deeply (more than 64 levels)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(str(k))
            check_json_value(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            check_json_value(v, depth + 1)
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""A string without NUL characters."""
Name = Annotated[str, Field(min_length=1, max_length=250), AfterValidator(_no_nul)]
"""An id or key stored in a 250-character column."""
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""A datetime, converted to UTC (naive means UTC)."""
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_value)]
"""A JSON object without NaN/Infinity or NUL characters."""


async def reject_nul_bytes(request: Request) -> None:
    """Router dependency: 400 for a NUL character in a path or query parameter (PostgreSQL cannot compare them)."""
    for where, values in (("path", request.path_params.values()), ("query", request.query_params.values())):
        if any("\x00" in str(v) for v in values):
            raise InvalidRequest(f"a {where} parameter contains a NUL character")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- DAGs ---------------------------------------------------------------------------------


class DagWarningType(str, Enum):
    """Kinds of DAG warning (see ``headrace.authoring.dag_warnings``)."""

    unsupported_argument = UNSUPPORTED_ARGUMENT
    """An Airflow operator argument headrace does not support yet (given to a task or in ``default_args``)."""
    unused_default_arg = UNUSED_DEFAULT_ARG
    """A ``default_args`` key that no task of the DAG accepts."""


class DAGWarningNote(_Out):
    """One thing the DAG's author wrote that headrace ignores, as listed on its DAG."""

    warning_type: str
    """A :class:`DagWarningType` value: ``unsupported_argument`` or ``unused_default_arg``."""
    message: str
    """One line naming the argument (and the task it was given to)."""
    timestamp: datetime
    """When the DAG's file was parsed."""


class DAG(_Out):
    """A DAG as last parsed."""

    dag_id: str
    dag_display_name: str
    """The name the UI shows: the DAG's ``dag_display_name``, else its dag_id (Airflow's field)."""
    fileloc: str
    is_paused: bool
    is_active: bool
    """False once its file no longer defines it."""
    description: str | None
    tags: list[str]
    schedule: str | None
    """The schedule's summary (cron string, preset, interval); None if only triggered."""
    max_active_runs: int
    max_active_tasks: int
    last_parsed_at: datetime | None
    next_logical_date: datetime | None
    next_run_after: datetime | None
    """When the scheduler creates the next scheduled run; None if none is due."""
    warnings: list[DAGWarningNote]
    """What the DAG's author wrote that headrace ignores (its DAG warnings), in parse order."""


class DAGCollection(BaseModel):
    """A page of DAGs."""

    dags: list[DAG]
    total_entries: int


class DAGWarning(DAGWarningNote):
    """A DAG warning (``GET /dagWarnings``): an argument the author of DAG ``dag_id`` wrote that headrace ignores."""

    dag_id: str


class DAGWarningCollection(BaseModel):
    """A page of DAG warnings."""

    dag_warnings: list[DAGWarning]
    total_entries: int


class DAGPatch(_In):
    """``PATCH /dags/{dag_id}``: pause or unpause."""

    is_paused: bool


class DAGSource(BaseModel):
    """The DAG file's text."""

    fileloc: str
    content: str


class TaskParam(BaseModel):
    """One param a task sees (Airflow's ``Param``): its default, description and JSON schema."""

    value: Any = None
    """The default; None also when the param has none (then ``has_default`` is false)."""
    has_default: bool
    description: str | None
    schema_: dict[str, Any] = Field(alias="schema")
    """The JSON schema its value must satisfy (``{}``: any JSON value)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Task(BaseModel):
    """A task of the DAG's current version. Durations in seconds, memory in bytes."""

    task_id: str
    operator: str
    upstream_task_ids: list[str]
    downstream_task_ids: list[str]
    trigger_rule: str
    retries: int
    retry_delay_seconds: float
    retry_exponential_backoff: bool
    max_retry_delay_seconds: float | None
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    weight_rule: str
    """``downstream`` (default), ``upstream`` or ``absolute``: how task instances' priority is summed."""
    depends_on_past: bool
    wait_for_downstream: bool
    is_setup: bool
    is_teardown: bool
    memory_limit_bytes: int | None
    execution_timeout_seconds: float | None
    owner: str
    doc_md: str | None
    is_mapped: bool = False
    """True for a mapped task (``.expand()``, or a task in a mapped task group); its task instances have a
    ``map_index`` from 0 (Airflow's field)."""
    params: dict[str, TaskParam]
    """name → param, as the task's tries see them: the DAG's params merged with the task groups'
    ``default_args['params']`` and the task's own ``params=`` (Airflow's task ``params``)."""


class TaskCollection(BaseModel):
    """The tasks of a DAG (sorted by task_id)."""

    tasks: list[Task]
    total_entries: int


# --- DAG runs -----------------------------------------------------------------------------


class DAGRun(_Out):
    """One run of a DAG."""

    dag_id: str
    dag_run_id: str
    run_type: str
    """``scheduled``, ``manual`` or ``backfill``."""
    state: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: dict[str, Any]


class DAGRunCollection(BaseModel):
    """A page of DAG runs."""

    dag_runs: list[DAGRun]
    total_entries: int


class TriggerDAGRun(_In):
    """``POST /dags/{dag_id}/dagRuns``: a manual run."""

    dag_run_id: Name | None = None
    """Default ``manual__<logical date ISO>``."""
    logical_date: UtcDatetime | None = None
    """Default now."""
    conf: Annotated[Any, Field(json_schema_extra={"type": "object"})] = None
    """A JSON object, given to the run's tasks as ``params`` over the DAG's own (anything else: 400)."""


class DAGRunPatch(_In):
    """``PATCH /dags/{dag_id}/dagRuns/{dag_run_id}``: mark the run."""

    state: Literal["success", "failed"]


class ClearDAGRun(_In):
    """``POST /dags/{dag_id}/dagRuns/{dag_run_id}/clear``."""

    only_failed: bool = False
    dry_run: bool = False


# --- task instances and tries ------------------------------------------------------------


class TaskInstance(BaseModel):
    """One task in one DAG run, with the process facts of its latest try."""

    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int = -1
    """The task instance's map index (-1: not mapped; 0..n-1 for a mapped task's instances)."""
    rendered_map_index: str | None = None
    """Its label: the task's ``map_index_template`` as its latest try rendered it (None without one)."""
    state: str
    try_number: int
    """Number of the latest try queued (0: never queued)."""
    max_tries: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    """Seconds between start_date and end_date."""
    end_reason: str | None
    pool: str
    queue: str
    priority_weight: int
    queued_at: datetime | None
    next_retry_at: datetime | None
    hostname: str | None
    """Of the latest try, like pid, peak_rss_bytes and cpu_seconds."""
    pid: int | None
    peak_rss_bytes: int | None
    cpu_seconds: float | None


class TaskInstanceCollection(BaseModel):
    """A page of task instances."""

    task_instances: list[TaskInstance]
    total_entries: int


class NotCleared(BaseModel):
    """A task instance asked to be cleared that was not, and why."""

    task_id: str
    state: str
    reason: str
    """``queued`` / ``running`` (a try holds it), or ``state changed`` (someone else changed it meanwhile)."""
    dag_id: str
    """The DAG of the task instance: another DAG's when an ExternalTaskMarker reached it."""
    dag_run_id: str


class ClearedTaskInstances(BaseModel):
    """The task instances cleared (dry run: that would be), and those that could not be; with those of other
    DAGs that ExternalTaskMarkers among them mark (each names its ``dag_id``)."""

    task_instances: list[TaskInstance]
    not_cleared: list[NotCleared] = []


class TaskInstancePatch(_In):
    """``PATCH …/taskInstances/{task_id}``: mark the task instance."""

    state: Literal["success", "failed"]
    dry_run: bool = False


class MarkedTaskInstances(BaseModel):
    """The task instances a mark changed (dry run: would change)."""

    task_instances: list[TaskInstance]


class ClearTaskInstances(_In):
    """``POST /dags/{dag_id}/clearTaskInstances``."""

    dag_run_id: Name
    task_ids: list[Name | tuple[Name, Annotated[int, Field(ge=0, le=1_000_000)]]] | None = Field(
        default=None, max_length=10_000
    )
    """None: every task of the run. An item ``[task_id, map_index]`` (Airflow's form) clears that index of a
    mapped task only; a plain task id clears every index."""
    include_downstream: bool = False
    include_upstream: bool = False
    only_failed: bool = False
    dry_run: bool = False


class TaskTry(_Out):
    """One try of a task instance: where and how it ran. Times UTC; process start times in s since the epoch.

    ``supervisor_start_time`` and ``process_start_time`` name a process together with its pid (compare them
    with ``psutil.Process(pid).create_time()`` on ``hostname``); they are not clock readings: psutil adds
    the boot time from ``/proc/stat``, a whole second, so they can read up to 1 s early. The UI never shows
    a process start before the try's ``start_date``.
    """

    try_number: int
    state: str
    hostname: str
    supervisor_pid: int
    supervisor_start_time: float
    pid: int | None
    process_start_time: float | None
    start_date: datetime
    end_date: datetime | None
    duration: float | None
    heartbeat_at: datetime
    exit_code: int | None
    signal: int | None
    peak_rss_bytes: int | None
    cpu_seconds: float | None
    containment: str | None
    """``cgroup`` (the try ran in its own cgroup) or ``marker`` (best-effort); None for tries before it was recorded."""
    processes_left: int | None
    """Processes of the try still running when its task process ended (escaped descendants); None while running."""
    processes_killed: int | None
    """Of ``processes_left``, how many the supervisor killed."""
    end_reason: str | None
    error: str | None


class TaskTryCollection(BaseModel):
    """The tries of a task instance, oldest first."""

    tries: list[TaskTry]
    total_entries: int


class LogChunk(BaseModel):
    """Part of a try's log. ``content`` has secrets masked; offsets count bytes of the file."""

    content: str
    offset: int
    next_offset: int
    """Ask again from here for more."""
    finished: bool
    """True once the try has ended (then nothing more will be written)."""


class XComEntry(BaseModel):
    """A value pushed by a task instance (JSON)."""

    key: str
    value: Any
    created_at: datetime
    map_index: int = -1
    """The map index of the task instance that pushed it (-1: not mapped)."""


class XComCollection(BaseModel):
    """A page of XComs of a task instance."""

    xcom_entries: list[XComEntry]
    total_entries: int


# --- pools, variables, connections, import errors ------------------------------------------


Slots = Annotated[int, Field(ge=-1, le=INT32_MAX)]
"""A pool's slots: -1 is unlimited (Airflow's)."""


class Pool(BaseModel):
    """A pool and how its slots are used now."""

    name: str
    slots: int
    """-1: unlimited."""
    description: str | None
    occupied_slots: int
    """running_slots + queued_slots."""
    running_slots: int
    queued_slots: int
    open_slots: int
    """-1 for an unlimited pool."""


class PoolCollection(BaseModel):
    """A page of pools."""

    pools: list[Pool]
    total_entries: int


class PoolCreate(_In):
    """``POST /pools``."""

    name: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_no_nul)]
    slots: Slots
    description: Text | None = None


class PoolPatch(_In):
    """``PATCH /pools/{pool_name}``: fields to change."""

    slots: Slots | None = None
    description: Text | None = None


class Variable(BaseModel):
    """A variable; ``value`` is ``***`` when its key is sensitive (in lists, and for viewers)."""

    key: str
    value: str
    description: str | None


class VariableCollection(BaseModel):
    """A page of variables."""

    variables: list[Variable]
    total_entries: int


class VariableCreate(_In):
    """``POST /variables``."""

    key: Name
    value: Annotated[str, Field(max_length=1_000_000)]
    description: Text | None = None


class VariablePatch(_In):
    """``PATCH /variables/{key}``: fields to change."""

    value: Annotated[str, Field(max_length=1_000_000)] | None = None
    description: Text | None = None


Short = Annotated[str, Field(max_length=500), AfterValidator(_no_nul)]


class Connection(BaseModel):
    """A connection; ``password`` is ``***`` when set (never returned), sensitive ``extra`` keys masked."""

    conn_id: str
    conn_type: str
    description: str | None
    host: str | None
    port: int | None
    login: str | None
    schema_: str | None = Field(alias="schema")
    password: str | None
    extra: dict[str, Any] | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ConnectionCollection(BaseModel):
    """A page of connections."""

    connections: list[Connection]
    total_entries: int


class ConnectionCreate(_In):
    """``POST /connections``."""

    conn_id: Name
    conn_type: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)]
    description: Text | None = None
    host: Short | None = None
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    login: Short | None = None
    schema_: Short | None = Field(default=None, alias="schema")
    password: Annotated[str, Field(max_length=100_000)] | None = None
    extra: JsonObject | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectionPatch(_In):
    """``PATCH /connections/{conn_id}``: fields to change (absent ones stay; ``null`` empties one)."""

    conn_type: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)] | None = None
    description: Text | None = None
    host: Short | None = None
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    login: Short | None = None
    schema_: Short | None = Field(default=None, alias="schema")
    password: Annotated[str, Field(max_length=100_000)] | None = None
    extra: JsonObject | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ImportError(_Out):  # noqa: A001 — Airflow's resource name
    """A DAG file that failed to import."""

    id: int
    fileloc: str
    lineno: int | None
    message: str
    stacktrace: str | None
    timestamp: datetime


class ImportErrorCollection(BaseModel):
    """A page of import errors."""

    import_errors: list[ImportError]
    total_entries: int
