"""DAG ⇄ JSON: what the scheduler knows of a DAG without importing user code.

``serialize_dag(dag)`` returns a JSON-able dict with sorted keys and sorted
lists, so the same DAG always gives the same dict; ``dag_hash`` fingerprints it
(a new hash means a new DAG version). ``SerializedDag.from_dict`` reads it
back as typed, frozen objects. Durations are stored as float seconds, dates as
ISO 8601 strings in UTC, and callables only as ``has_*_callback`` flags.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from headrace.authoring.dag import DAG
from headrace.authoring.schedules import UTC, Timetable, deserialize_timetable, tz_from_name, tz_name
from headrace.authoring.task import BaseOperator
from headrace.authoring.trigger_rules import TriggerRule
from headrace.exceptions import DagDefinitionError, TaskNotFound

SERIALIZATION_VERSION = 1
"""Bumped when the layout changes; ``from_dict`` refuses other versions."""


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _sorted_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in sorted(d)}


def serialize_task(task: BaseOperator) -> dict[str, Any]:
    """The JSON-able description of one task (see ``SerializedTask`` for the fields)."""
    return _sorted_dict({
        "task_id": task.task_id,
        "operator": task.operator_name,
        "owner": task.owner,
        "upstream_task_ids": sorted(task.upstream_task_ids),
        "downstream_task_ids": sorted(task.downstream_task_ids),
        "trigger_rule": task.trigger_rule.value,
        "retries": task.retries,
        "retry_delay": task.retry_delay.total_seconds(),
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "max_retry_delay": _seconds(task.max_retry_delay),
        "execution_timeout": _seconds(task.execution_timeout),
        "memory_limit": task.memory_limit,
        "pool": task.pool,
        "pool_slots": task.pool_slots,
        "priority_weight": task.priority_weight,
        "queue": task.queue,
        "multiple_outputs": task.multiple_outputs,
        "doc_md": task.doc_md,
        "has_on_failure_callback": bool(task.on_failure_callback),
        "has_on_success_callback": bool(task.on_success_callback),
        "has_on_retry_callback": bool(task.on_retry_callback),
        **_deadline_fields(task.deadline, task.deadline_reference, bool(task.on_deadline_miss_callback)),
    })


def _deadline_fields(deadline: timedelta | None, reference: str, has_callback: bool) -> dict[str, Any]:
    """``deadline`` / ``has_on_deadline_miss_callback`` keys, present only when set (older hashes stay)."""
    out: dict[str, Any] = {}
    if deadline is not None:
        out["deadline"] = {"interval": deadline.total_seconds(), "reference": reference}
    if has_callback:
        out["has_on_deadline_miss_callback"] = True
    return out


def serialize_dag(dag: DAG) -> dict[str, Any]:
    """Return ``dag`` as a JSON-able dict with sorted keys.

    Raises ``DagDefinitionError`` (with the DAG's file and line) if the DAG's
    ``params`` are not JSON-serializable.
    """
    try:
        params = json.loads(json.dumps(dag.params, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise DagDefinitionError(
            f"params of DAG {dag.dag_id!r} must be JSON-serializable: {exc}", fileloc=dag.fileloc, lineno=dag.lineno
        ) from None
    return _sorted_dict({
        "version": SERIALIZATION_VERSION,
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "lineno": dag.lineno,
        "schedule": None if dag.schedule is None else dag.timetable.summary,
        "timetable": _sorted_dict(dag.timetable.serialize()),
        "timezone": tz_name(dag.timezone or UTC),
        "start_date": _iso(dag.start_date),
        "end_date": _iso(dag.end_date),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "dagrun_timeout": _seconds(dag.dagrun_timeout),
        "tags": sorted(dag.tags),
        "description": dag.description,
        "doc_md": dag.doc_md,
        "params": params,
        "has_on_success_callback": dag.on_success_callback is not None,
        "has_on_failure_callback": dag.on_failure_callback is not None,
        **_deadline_fields(dag.deadline, dag.deadline_reference, dag.on_deadline_miss_callback is not None),
        "tasks": {tid: serialize_task(dag.task_dict[tid]) for tid in sorted(dag.task_dict)},
    })


def dag_hash(serialized: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``serialized`` (sorted keys, no spaces)."""
    text = json.dumps(serialized, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _delta(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _date(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Deadline:
    """When a DAG run or task instance must have finished: ``reference`` + ``interval`` seconds."""

    interval: float
    """Seconds after the reference time."""
    reference: str
    """``logical_date`` or ``run_start``."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Deadline | None:
        """Read the serialized ``{"interval", "reference"}`` (None stays None)."""
        return None if d is None else cls(float(d["interval"]), str(d["reference"]))


@dataclass(frozen=True)
class SerializedTask:
    """A task as the scheduler sees it. Durations in seconds, ``memory_limit`` in bytes."""

    task_id: str
    operator: str
    """Operator class name (``PythonOperator``) or decorator (``@task``)."""
    upstream_task_ids: frozenset[str]
    downstream_task_ids: frozenset[str]
    trigger_rule: TriggerRule
    retries: int
    retry_delay: float
    retry_exponential_backoff: bool
    max_retry_delay: float | None
    execution_timeout: float | None
    memory_limit: int | None
    pool: str
    pool_slots: int
    priority_weight: int
    queue: str
    owner: str = "headrace"
    multiple_outputs: bool = False
    doc_md: str | None = None
    has_on_failure_callback: bool = False
    has_on_success_callback: bool = False
    has_on_retry_callback: bool = False
    deadline: Deadline | None = None
    has_on_deadline_miss_callback: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SerializedTask:
        """Build from ``serialize_task`` output. Raises ``KeyError`` for a missing field."""
        return cls(
            task_id=d["task_id"],
            operator=d["operator"],
            upstream_task_ids=frozenset(d["upstream_task_ids"]),
            downstream_task_ids=frozenset(d["downstream_task_ids"]),
            trigger_rule=TriggerRule(d["trigger_rule"]),
            retries=int(d["retries"]),
            retry_delay=float(d["retry_delay"]),
            retry_exponential_backoff=bool(d["retry_exponential_backoff"]),
            max_retry_delay=d["max_retry_delay"],
            execution_timeout=d["execution_timeout"],
            memory_limit=d["memory_limit"],
            pool=d["pool"],
            pool_slots=int(d["pool_slots"]),
            priority_weight=int(d["priority_weight"]),
            queue=d["queue"],
            owner=d.get("owner", "headrace"),
            multiple_outputs=bool(d.get("multiple_outputs", False)),
            doc_md=d.get("doc_md"),
            has_on_failure_callback=bool(d.get("has_on_failure_callback")),
            has_on_success_callback=bool(d.get("has_on_success_callback")),
            has_on_retry_callback=bool(d.get("has_on_retry_callback")),
            deadline=Deadline.from_dict(d.get("deadline")),
            has_on_deadline_miss_callback=bool(d.get("has_on_deadline_miss_callback")),
        )

    def retry_delay_for(self, try_number: int) -> float:
        """Seconds before the try after try ``try_number`` failed (same formula as ``BaseOperator``)."""
        if not self.retry_exponential_backoff:
            return self.retry_delay
        cap = self.max_retry_delay if self.max_retry_delay is not None else 24 * 3600.0
        exponent = max(try_number, 1) - 1
        return cap if exponent > 64 else float(min(self.retry_delay * 2**exponent, cap))


@dataclass(frozen=True)
class SerializedDag:
    """A DAG as the scheduler sees it: schedule, limits and the task graph."""

    dag_id: str
    fileloc: str
    schedule: str | None
    """The schedule's summary (cron string, preset, ``every 1 day, 0:00:00``), None if unscheduled."""
    timetable: Timetable
    start_date: datetime | None
    end_date: datetime | None
    catchup: bool
    max_active_runs: int | None
    max_active_tasks: int | None
    tags: tuple[str, ...]
    description: str | None
    params: dict[str, Any]
    has_on_success_callback: bool
    has_on_failure_callback: bool
    tasks: dict[str, SerializedTask]
    lineno: int = 0
    dagrun_timeout: float | None = None
    doc_md: str | None = None
    timezone: str = "UTC"
    deadline: Deadline | None = None
    has_on_deadline_miss_callback: bool = False
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The dict this was read from."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SerializedDag:
        """Build from ``serialize_dag`` output. Raises ``DagDefinitionError`` for another version."""
        if d.get("version") != SERIALIZATION_VERSION:
            raise DagDefinitionError(
                f"serialized DAG {d.get('dag_id')!r} has version {d.get('version')!r}; "
                f"this headrace reads version {SERIALIZATION_VERSION}"
            )
        tz_from_name(d.get("timezone", "UTC"))  # validates the zone name
        return cls(
            dag_id=d["dag_id"],
            fileloc=d["fileloc"],
            lineno=int(d.get("lineno") or 0),
            schedule=d["schedule"],
            timetable=deserialize_timetable(d["timetable"]),
            timezone=d.get("timezone", "UTC"),
            start_date=_date(d["start_date"]),
            end_date=_date(d["end_date"]),
            catchup=bool(d["catchup"]),
            max_active_runs=d["max_active_runs"],
            max_active_tasks=d["max_active_tasks"],
            dagrun_timeout=d.get("dagrun_timeout"),
            tags=tuple(d["tags"]),
            description=d["description"],
            doc_md=d.get("doc_md"),
            params=dict(d["params"]),
            has_on_success_callback=bool(d["has_on_success_callback"]),
            has_on_failure_callback=bool(d["has_on_failure_callback"]),
            tasks={tid: SerializedTask.from_dict(t) for tid, t in d["tasks"].items()},
            deadline=Deadline.from_dict(d.get("deadline")),
            has_on_deadline_miss_callback=bool(d.get("has_on_deadline_miss_callback")),
            data=dict(d),
        )

    def get_task(self, task_id: str) -> SerializedTask:
        """The task ``task_id``. Raises ``TaskNotFound`` naming the DAG and task."""
        try:
            return self.tasks[task_id]
        except KeyError:
            raise TaskNotFound(
                f"DAG {self.dag_id!r} has no task {task_id!r}", dag_id=self.dag_id, task_id=task_id
            ) from None

    @property
    def task_ids(self) -> list[str]:
        """Task ids, sorted."""
        return sorted(self.tasks)

    @property
    def roots(self) -> list[str]:
        """Ids of tasks with no upstream task, sorted."""
        return sorted(t for t, task in self.tasks.items() if not task.upstream_task_ids)

    @property
    def leaves(self) -> list[str]:
        """Ids of tasks with no downstream task, sorted."""
        return sorted(t for t, task in self.tasks.items() if not task.downstream_task_ids)

    @property
    def has_deadlines(self) -> bool:
        """True if the DAG or any of its tasks has a ``deadline``."""
        return self.deadline is not None or any(t.deadline is not None for t in self.tasks.values())

    @property
    def hash(self) -> str:
        """``dag_hash`` of the dict this was read from."""
        return dag_hash(self.data)
