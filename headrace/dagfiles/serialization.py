"""DAG ⇄ JSON: what the scheduler knows of a DAG without importing user code.

``serialize_dag(dag)`` returns a JSON-able dict with sorted keys and sorted
lists, so the same DAG always gives the same dict; ``dag_hash`` fingerprints it
(a new hash means a new DAG version). ``SerializedDag.from_dict`` reads it
back as typed, frozen objects. Durations are stored as float seconds, dates as
ISO 8601 strings in UTC, and callables only as ``has_*_callback`` flags.

The scheduler must never be stopped by a DAG's schedule. :func:`check_schedule`
is what the DAG processor runs on every DAG it parsed: read the serialized
DAG back and evaluate its timetable once, as the scheduler will; any failure
(a custom ``Timetable`` defined in the DAG file itself, where the scheduler
cannot import it; a ``serialize``/``deserialize`` that raises or loses
arguments; a schedule that raises when evaluated) is a ``ScheduleError`` with
the DAG's file and line, i.e. that DAG's import error.
A stored timetable that no longer deserializes (written by another headrace
version, or edited by hand) is read as an :class:`UnreadableTimetable`, so the
DAG's graph and its runs still work; evaluating it raises ``ScheduleError``,
which the scheduler catches per DAG.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.authoring.context import make_jinja_env
from headrace.authoring.dag import DAG
from headrace.authoring.params import ParamsDict, own_params_field, params_from_specs
from headrace.authoring.schedules import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    tz_from_name,
    tz_name,
)
from headrace.authoring.setup_teardown import effective_leaves, indirect_setups
from headrace.authoring.start_trigger import start_trigger_spec
from headrace.authoring.task import BaseOperator, retry_delay_seconds
from headrace.authoring.timetables import deserialize_timetable, serialize_timetable
from headrace.authoring.trigger_rules import TriggerRule
from headrace.dagfiles.task_options import priority_weights, read_options, task_options
from headrace.exceptions import DagDefinitionError, ScheduleError, TaskNotFound

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
    return _sorted_dict(
        {
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
            **task_options(task),
            **_mapping_fields(task),
            **_external_fields(task),
            **_start_trigger_fields(task),
            **own_params_field(getattr(task, "params", None), task.dag.params if task.dag else None),
        }
    )


def _mapping_fields(task: BaseOperator) -> dict[str, Any]:
    """``expand_input`` (how to count a mapped task's instances), ``mapped_group``, ``max_active_tis_per_dag``
    and ``max_active_tis_per_dagrun``: each present only when set (older hashes stay)."""
    out: dict[str, Any] = {}
    group = task.mapped_group()
    expand_input = task.expand_input or (group.expand_input if group is not None else None)
    if expand_input is not None:
        out["expand_input"] = expand_input.length_spec()
    if group is not None:
        out["mapped_group"] = group.group_id
    for name in ("max_active_tis_per_dag", "max_active_tis_per_dagrun"):
        if getattr(task, name, None) is not None:
            out[name] = getattr(task, name)
    return out


def _external_fields(task: BaseOperator) -> dict[str, Any]:
    """``external``: the other DAG an ExternalTaskSensor waits on, an ExternalTaskMarker clears or a
    TriggerDagRunOperator triggers (``external_reference()``); present only for those (older hashes stay)."""
    reference = getattr(task, "external_reference", None)
    if reference is None:
        return {}
    return {"external": _sorted_dict(reference())}


def _start_trigger_fields(task: BaseOperator) -> dict[str, Any]:
    """``start_trigger``: how a task that starts in the triggerer defers (:func:`start_trigger_spec`); present
    only for those (older hashes stay)."""
    spec = start_trigger_spec(task)
    return {} if spec is None else {"start_trigger": _sorted_dict(spec)}


def _deadline_fields(deadline: timedelta | None, reference: str, has_callback: bool) -> dict[str, Any]:
    """``deadline`` / ``has_on_deadline_miss_callback`` keys, present only when set (older hashes stay)."""
    out: dict[str, Any] = {}
    if deadline is not None:
        out["deadline"] = {"interval": deadline.total_seconds(), "reference": reference}
    if has_callback:
        out["has_on_deadline_miss_callback"] = True
    return out


def dag_doc_md(dag: DAG) -> str | None:
    """The DAG's ``doc_md``; one that names a ``.md`` file (Airflow's ``doc_md="README.md"``) is that file's text.

    The file is looked for as template files are (the DAG's ``template_searchpath``, then the DAG file's
    folder); a name found nowhere stays as written.
    """
    doc = dag.doc_md
    if doc is None or not doc.strip().endswith(".md") or "\n" in doc.strip():
        return doc
    import jinja2

    loader = make_jinja_env(dag).loader
    assert loader is not None
    try:
        return loader.get_source(jinja2.Environment(), doc.strip())[0]
    except (jinja2.TemplateNotFound, OSError):
        return doc


def serialize_dag(dag: DAG, *, catchup_default: bool = False) -> dict[str, Any]:
    """Return ``dag`` as a JSON-able dict with sorted keys.

    ``catchup_default`` is the ``catchup`` of a DAG that does not set it
    (``DAG(catchup=None)``): the DAG processor passes
    ``scheduler.catchup_by_default``; False is Airflow 3's default.
    Raises ``DagDefinitionError`` (with the DAG's file and line) if the DAG's
    ``params`` are not JSON-serializable.
    """
    try:
        params = json.loads(json.dumps(_defaults(dag.params), sort_keys=True))
        specs = json.loads(json.dumps(dag.params.serialize(), sort_keys=True)) if _needs_specs(dag.params) else None
    except (TypeError, ValueError) as exc:
        raise DagDefinitionError(
            f"params of DAG {dag.dag_id!r} must be JSON-serializable: {exc}", fileloc=dag.fileloc, lineno=dag.lineno
        ) from None
    return _sorted_dict(
        {
            "version": SERIALIZATION_VERSION,
            "dag_id": dag.dag_id,
            "fileloc": dag.fileloc,
            "lineno": dag.lineno,
            "schedule": None if dag.schedule is None else dag.timetable.summary,
            "timetable": _sorted_dict(serialize_timetable(dag.timetable)),
            "timezone": tz_name(dag.timezone or UTC),
            "start_date": _iso(dag.start_date),
            "end_date": _iso(dag.end_date),
            "catchup": catchup_default if dag.catchup is None else dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "max_active_tasks": dag.max_active_tasks,
            "dagrun_timeout": _seconds(dag.dagrun_timeout),
            "tags": sorted(dag.tags),
            "description": dag.description,
            "doc_md": dag_doc_md(dag),
            "params": params,
            **({"param_specs": specs} if specs is not None else {}),
            "has_on_success_callback": dag.on_success_callback is not None,
            "has_on_failure_callback": dag.on_failure_callback is not None,
            **_deadline_fields(dag.deadline, dag.deadline_reference, dag.on_deadline_miss_callback is not None),
            "tasks": {tid: serialize_task(dag.task_dict[tid]) for tid in sorted(dag.task_dict)},
            **({"dag_display_name": dag.dag_display_name} if dag.dag_display_name != dag.dag_id else {}),
            **(
                {"is_paused_upon_creation": dag.is_paused_upon_creation}
                if dag.is_paused_upon_creation is not None
                else {}
            ),
            **_group_fields(dag),
        }
    )


def _group_fields(dag: DAG) -> dict[str, Any]:
    """``task_groups`` and ``edge_info`` keys, present only when the DAG has groups / labels (older hashes stay).

    ``task_groups``: full group id → ``{"label", "parent", "tooltip", "ui_color",
    "ui_fgcolor", "prefix_group_id", "children"}`` (``children``: the direct
    members' ids, tasks and groups, in the order they were added).
    ``edge_info``: upstream id → downstream id → ``{"label": text}``.
    """
    out: dict[str, Any] = {}
    if dag.task_group_dict:
        out["task_groups"] = {
            gid: _sorted_dict(
                {
                    "label": group.label,
                    "parent": group.parent_group.group_id if group.parent_group is not None else None,
                    "tooltip": group.tooltip,
                    "ui_color": group.ui_color,
                    "ui_fgcolor": group.ui_fgcolor,
                    "prefix_group_id": group.prefix_group_id,
                    "children": list(group.children),
                    **({"is_mapped": True} if group.expand_input is not None else {}),
                }
            )
            for gid, group in sorted(dag.task_group_dict.items())
        }
    if dag.edge_info:
        edges: dict[str, dict[str, dict[str, str]]] = {}
        for (up, down), info in sorted(dag.edge_info.items()):
            edges.setdefault(up, {})[down] = _sorted_dict(info)
        out["edge_info"] = edges
    return out


def _defaults(params: ParamsDict) -> dict[str, Any]:
    """name → default of the params that have one (the ``params`` key, as before ``Param``)."""
    return {name: param.value for name, param in params.items_params() if param.has_value}


def _needs_specs(params: ParamsDict) -> bool:
    """Whether the ``param_specs`` key is needed: some param has a schema, a description or no default.

    DAGs with plain-value params only serialize as before, so their hash (and version) stays.
    """
    return any(p.schema or p.description is not None or not p.has_value for _, p in params.items_params())


def dag_hash(serialized: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``serialized`` (sorted keys, no spaces)."""
    text = json.dumps(serialized, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_schedule(dag: DAG, data: Mapping[str, Any], now: datetime) -> None:
    """Read ``data`` (``serialize_dag(dag)``) back and evaluate its schedule at ``now`` as the scheduler will.

    Raises ``ScheduleError`` naming the DAG, with its file and line, when the
    timetable is a class the scheduler cannot rebuild (a custom ``Timetable``
    defined in the DAG file, which the scheduler never imports), does not
    deserialize to an equal timetable, or raises when asked for its first two runs (e.g. the cron ``0 0 30 2 *``,
    February 30th, which croniter accepts and then cannot evaluate).
    """
    where: dict[str, Any] = {"fileloc": dag.fileloc, "lineno": dag.lineno}
    own = type(dag.timetable)
    try:
        sdag = SerializedDag.from_dict(data)
    except Exception as exc:  # noqa: BLE001 - user code or stored data: any failure is reported, not raised
        raise ScheduleError(
            f"DAG {dag.dag_id!r} cannot be read back after serializing: {type(exc).__name__}: {exc}", **where
        ) from None
    if own.__module__ == "__main__" or own.__module__.startswith("headrace_dag_"):  # see dagfiles.loader
        raise ScheduleError(
            f"DAG {dag.dag_id!r}: the timetable class {own.__name__} is defined in a DAG file; the scheduler "
            "imports timetables by module name and never runs DAG files: move it to a module of its own "
            "(beside the DAG files or in an installed package) and import it from there",
            **where,
        )
    if isinstance(sdag.timetable, UnreadableTimetable):
        raise ScheduleError(f"DAG {dag.dag_id!r}: {sdag.timetable.error}", **where)
    if type(sdag.timetable) is not own or sdag.timetable != dag.timetable:
        raise ScheduleError(
            f"DAG {dag.dag_id!r}: the timetable {own.__name__} does not read back as it was written: "
            f"{own.__name__}.deserialize(serialize()) gave {sdag.timetable!r}",
            **where,
        )
    try:
        next_runs(sdag, None, now, count=2)
    except Exception as exc:  # noqa: BLE001 - user code or stored data: any failure is reported, not raised
        raise ScheduleError(
            f"DAG {dag.dag_id!r}: schedule {sdag.timetable.summary!r} cannot be evaluated: {type(exc).__name__}: {exc}",
            **where,
        ) from None


def next_runs(sdag: SerializedDag, last: DataInterval | None, now: datetime, *, count: int = 1) -> DagRunInfo | None:
    """The run after ``last`` (``count`` > 1: the one ``count - 1`` further on), or None.

    Raises whatever the timetable raises (``ScheduleError`` for an unreadable one).
    """
    info: DagRunInfo | None = None
    for _ in range(count):
        info = sdag.timetable.next_run_info(
            last, start_date=sdag.start_date, end_date=sdag.end_date, catchup=sdag.catchup, now=now
        )
        if info is None:
            return None
        last = info.data_interval
    return info


class UnreadableTimetable(Timetable):
    """A stored timetable that :func:`deserialize_timetable` refused; evaluating it raises ``ScheduleError``.

    ``serialize()`` gives back the stored dict, so the version's hash is unchanged.
    """

    def __init__(self, data: Mapping[str, Any], error: str) -> None:
        self.data = dict(data)
        self.error = error
        """Why it could not be read, one line."""

    @property
    def summary(self) -> str:
        return "unreadable"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        raise ScheduleError(self.error)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return DataInterval.exact(run_after)

    def serialize(self) -> dict[str, Any]:
        return dict(self.data)


def _timetable(data: Mapping[str, Any], fileloc: str | None) -> Timetable:
    """The stored timetable; a custom class's module is looked for beside the DAG file too (as when parsed)."""
    if fileloc and "__type" in data and not str(data["__type"]).startswith("headrace."):
        folder = os.path.dirname(fileloc)
        if folder and folder not in sys.path:
            sys.path.append(folder)
    try:
        return deserialize_timetable(dict(data))
    except Exception as exc:  # noqa: BLE001 - a newer layout, a hand edit: keep the graph usable, fail only the schedule
        return UnreadableTimetable(data, f"the stored timetable cannot be read: {exc}")


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
    is_setup: bool = False
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False
    """A teardown whose failure fails the DAG run."""
    weight_rule: str = "downstream"
    depends_on_past: bool = False
    wait_for_downstream: bool = False
    ignore_first_depends_on_past: bool = False
    wait_for_past_depends_before_skipping: bool = False
    """Hold a task instance that would be skipped until ``depends_on_past`` lets it go (Airflow's flag)."""
    has_on_execute_callback: bool = False
    has_on_skipped_callback: bool = False
    outlets: tuple[dict[str, Any], ...] = ()
    """Assets and aliases the task updates (``BaseAsset.as_json``)."""
    inlets: tuple[dict[str, Any], ...] = ()
    expand_input: dict[str, Any] | None = None
    """How to count a mapped task's instances (``headrace.authoring.expand_input``); None: not mapped."""
    mapped_group: str | None = None
    """The mapped task group the task is mapped by (None: not in one)."""
    max_active_tis_per_dag: int | None = None
    max_active_tis_per_dagrun: int | None = None
    params: tuple[Mapping[str, Any], ...] | None = None
    """The task's params (``ParamsDict.serialize`` specs) when they differ from the DAG's; None: the DAG's."""
    start_trigger: Mapping[str, Any] | None = None
    """How each try starts in the triggerer, with no process (``start_from_trigger``: see
    :func:`~headrace.authoring.start_trigger.start_trigger_spec`); None for other tasks."""
    external: Mapping[str, Any] | None = None
    """Another DAG this task refers to: ``{"kind": "sensor" | "marker" | "trigger", "dag_id", …}`` (a marker
    adds ``task_id``, ``logical_date`` — a template — and ``recursion_depth``); None for other tasks."""

    @property
    def is_mapped(self) -> bool:
        """True for a mapped task and every task of a mapped task group."""
        return self.expand_input is not None

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
            **read_options(d),
            expand_input=d.get("expand_input"),
            mapped_group=d.get("mapped_group"),
            max_active_tis_per_dag=d.get("max_active_tis_per_dag"),
            max_active_tis_per_dagrun=d.get("max_active_tis_per_dagrun"),
            params=tuple(d["params"]) if d.get("params") is not None else None,
            external=d.get("external"),
            start_trigger=d.get("start_trigger"),
        )

    def retry_delay_for(self, try_number: int) -> float:
        """Seconds before the try after try ``try_number`` failed (:func:`~headrace.authoring.task.retry_delay_seconds`)."""
        return retry_delay_seconds(
            self.retry_delay, try_number, exponential=self.retry_exponential_backoff, max_delay=self.max_retry_delay
        )


def group_task_ids(task_groups: Mapping[str, Mapping[str, Any]], group_id: str) -> list[str]:
    """The ids of the tasks inside group ``group_id`` of a serialized DAG's ``task_groups``, nested groups'
    included, depth first in the order they were added. Raises ``KeyError`` for an unknown group."""
    out: list[str] = []
    for child in task_groups[group_id].get("children", ()):
        out.extend(group_task_ids(task_groups, child) if child in task_groups else [child])
    return out


@dataclass(frozen=True)
class SerializedTaskGroup:
    """A task group as stored with the DAG (for the UI; the scheduler ignores groups)."""

    group_id: str
    """The full id (``outer.inner``)."""
    label: str
    """The id as given, without the parents' prefix."""
    parent: str | None
    """The parent group's full id, None at the DAG's top level."""
    children: tuple[str, ...]
    """The direct members' ids (tasks and groups), in the order they were added."""
    tooltip: str = ""
    ui_color: str = "CornflowerBlue"
    ui_fgcolor: str = "#000"
    prefix_group_id: bool = True
    is_mapped: bool = False
    """A mapped task group (``.expand``): its tasks run once per map index."""

    @classmethod
    def from_dict(cls, group_id: str, d: Mapping[str, Any]) -> SerializedTaskGroup:
        """Build from one entry of the serialized ``task_groups``. Raises ``KeyError`` for a missing field."""
        return cls(
            group_id=group_id,
            label=d["label"],
            parent=d.get("parent"),
            children=tuple(d["children"]),
            tooltip=d.get("tooltip") or "",
            ui_color=d.get("ui_color") or "CornflowerBlue",
            ui_fgcolor=d.get("ui_fgcolor") or "#000",
            prefix_group_id=bool(d.get("prefix_group_id", True)),
            is_mapped=bool(d.get("is_mapped", False)),
        )


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
    """name → default, for the params that have one."""
    has_on_success_callback: bool
    has_on_failure_callback: bool
    tasks: dict[str, SerializedTask]
    lineno: int = 0
    dagrun_timeout: float | None = None
    doc_md: str | None = None
    timezone: str = "UTC"
    deadline: Deadline | None = None
    has_on_deadline_miss_callback: bool = False
    task_groups: dict[str, SerializedTaskGroup] = field(default_factory=dict)
    """Task groups by full id (empty without groups)."""
    edge_info: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """upstream id → downstream id → ``{"label": text}`` (edge labels)."""
    param_specs: list[dict[str, Any]] = field(default_factory=list)
    """``{"name", "default"?, "description", "schema"}`` per param, in declaration order; empty when every
    param is a plain value (then ``params`` alone describes them)."""
    dag_display_name: str | None = None
    """The name the UI shows; None: the dag_id."""
    is_paused_upon_creation: bool | None = None
    """None: ``core.dags_are_paused_at_creation`` decides."""
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The dict this was read from."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SerializedDag:
        """Build from ``serialize_dag`` output. Raises ``DagDefinitionError`` for another version.

        A timetable that does not deserialize becomes an :class:`UnreadableTimetable`.
        """
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
            timetable=_timetable(d["timetable"], d.get("fileloc")),
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
            task_groups={gid: SerializedTaskGroup.from_dict(gid, g) for gid, g in d.get("task_groups", {}).items()},
            edge_info={
                up: {down: dict(info) for down, info in downs.items()} for up, downs in d.get("edge_info", {}).items()
            },
            param_specs=list(d.get("param_specs") or []),
            dag_display_name=d.get("dag_display_name"),
            is_paused_upon_creation=d.get("is_paused_upon_creation"),
            data=dict(d),
        )

    @property
    def params_dict(self) -> ParamsDict:
        """The DAG's params with their schemas, rebuilt from the stored JSON (no user code is imported)."""
        return params_dict_of(self.data or {"params": self.params, "param_specs": self.param_specs})

    def task_params(self, task_id: str) -> ParamsDict:
        """The params task ``task_id`` sees: its own merged params (DAG's, task groups' ``default_args``, its own
        ``params=``) when they differ from the DAG's, else the DAG's. Raises ``TaskNotFound``."""
        own = self.get_task(task_id).params
        return params_from_specs(own) if own is not None else self.params_dict

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

    @functools.cached_property
    def outcome_leaves(self) -> list[str]:
        """The tasks whose states decide the run's outcome: leaves, teardowns left out (Airflow's rule,
        :func:`~headrace.authoring.setup_teardown.effective_leaves`)."""
        return effective_leaves(self.tasks)

    @functools.cached_property
    def indirect_setups(self) -> dict[str, frozenset[str]]:
        """task id → relevant setups that are not its direct upstream (checked besides its trigger rule)."""
        return indirect_setups(self.tasks)

    @functools.cached_property
    def priority_weights(self) -> dict[str, int]:
        """task id → its task instances' queueing priority (``weight_rule`` applied)."""
        return priority_weights(self.tasks)

    @property
    def has_deadlines(self) -> bool:
        """True if the DAG or any of its tasks has a ``deadline``."""
        return self.deadline is not None or any(t.deadline is not None for t in self.tasks.values())

    @property
    def hash(self) -> str:
        """``dag_hash`` of the dict this was read from."""
        return dag_hash(self.data)


def params_dict_of(serialized: Mapping[str, Any]) -> ParamsDict:
    """The params of a serialized DAG (``serialize_dag`` output, any layout) as a ParamsDict with schemas.

    Reads ``param_specs`` when present, else makes schema-less params of the ``params`` defaults.
    """
    specs = serialized.get("param_specs")
    if specs:
        return params_from_specs(specs)
    return ParamsDict(dict(serialized.get("params") or {}))
