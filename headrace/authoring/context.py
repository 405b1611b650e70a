"""The context a task's code sees: what runs, in which DAG run, and how to talk to the runtime.

``build_context`` makes the dict passed to ``execute(context)``, to templates
and (key by key) to callables. The runtime supplies a :class:`RunInfo` and an
object implementing :class:`RuntimeTI` (XCom and skipping go through it to the
supervisor; authoring never touches the database).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from headrace.authoring import macros
from headrace.authoring.asset_events import (
    AssetEventInfo,
    InletEventsAccessor,
    OutletEventAccessors,
    TriggeringAssetEvents,
)
from headrace.authoring.params import context_params
from headrace.authoring.secrets import ConnectionAccessor, VariableAccessor
from headrace.exceptions import DagDefinitionError
from headrace.types import Context

if TYPE_CHECKING:
    import jinja2

    from headrace.authoring.dag import DAG
    from headrace.authoring.task import BaseOperator


@dataclass(frozen=True)
class PreviousRun:
    """The DAG's latest run in state ``success`` with a logical date before this run's (Airflow's
    "previous successful DAG run"); its dates are the context's ``prev_*_success`` (UTC-aware or None)."""

    data_interval_start: datetime | None
    data_interval_end: datetime | None
    start_date: datetime | None
    """When that run started running."""
    end_date: datetime | None
    """When that run ended."""

    @classmethod
    def from_run(cls, run: Any) -> PreviousRun:
        """The PreviousRun of a ``dag_run`` row (an ORM object or a Row with the same column names)."""
        return cls(run.data_interval_start, run.data_interval_end, run.start_date, run.end_date)


@dataclass(frozen=True)
class RunInfo:
    """The DAG run a try belongs to, as the task process sees it."""

    dag_id: str
    """The DAG's id."""
    run_id: str
    """The run's id, e.g. ``scheduled__2024-01-01T00:00:00+00:00``."""
    logical_date: datetime
    """The run's logical date (UTC-aware; the data interval's start for scheduled runs)."""
    data_interval_start: datetime
    """Start of the data interval (UTC-aware)."""
    data_interval_end: datetime
    """End of the data interval (UTC-aware)."""
    run_type: str = "manual"
    """``scheduled``, ``manual`` or ``backfill``."""
    conf: Mapping[str, Any] = field(default_factory=dict)
    """The run's conf (from a trigger); overrides DAG params of the same name."""
    previous_success: PreviousRun | None = None
    """The DAG's latest successful run before this one (``prev_*_success`` in the context); None if none."""
    triggering_asset_events: tuple[Mapping[str, Any], ...] = ()
    """The asset events an ``asset_triggered`` run consumed (``AssetEventInfo.from_dict`` shape); empty otherwise."""

    @classmethod
    def from_run(cls, run: Any, previous_success: Any = None) -> RunInfo:
        """The RunInfo of a ``dag_run`` row (an ORM object or a Row with the same column names).

        A run without a logical date uses its ``queued_at``; a missing data interval end is the logical date.
        ``previous_success``: the previous successful run's row (same column names) or None.
        """
        when = run.logical_date or run.queued_at
        return cls(
            dag_id=run.dag_id,
            run_id=run.run_id,
            logical_date=when,
            data_interval_start=run.data_interval_start or when,
            data_interval_end=run.data_interval_end or when,
            run_type=run.run_type,
            conf=dict(run.conf or {}),
            previous_success=None if previous_success is None else PreviousRun.from_run(previous_success),
        )


@runtime_checkable
class RuntimeTI(Protocol):
    """What the runtime offers a running task instance (``context["ti"]``)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    max_tries: int

    def xcom_push(self, key: str, value: Any) -> None:
        """Store an XCom of this task instance. Raises ``XComError`` if not serializable or too big."""
        ...

    def xcom_pull(
        self, task_ids: str | Sequence[str] | None = None, key: str = "return_value", dag_id: str | None = None
    ) -> Any:
        """Return the XCom ``key`` of ``task_ids`` in this run (a list for a list of ids; None if missing)."""
        ...

    def skip(self, task_ids: Iterable[str]) -> None:
        """Mark other task instances of this run ``skipped`` (for branch / short-circuit)."""
        ...


def build_context(
    dag: DAG,
    task: BaseOperator,
    run: RunInfo,
    ti: RuntimeTI,
    *,
    start_date: datetime | None = None,
    test_mode: bool = False,
    expanded_ti_count: int | None = None,
    conf_overrides_params: bool = True,
) -> Context:
    """Return the context of one try: the keys of Airflow 3's context, with its meanings.

    Keys: ``dag``, ``task``, ``ti`` and ``task_instance`` (the same RuntimeTI),
    ``dag_run`` (the RunInfo), ``run_id``, ``logical_date``, ``ds``
    (``YYYY-MM-DD``), ``ds_nodash``, ``ts`` (ISO 8601), ``ts_nodash``
    (``YYYYMMDDTHHMMSS``), ``ts_nodash_with_tz`` (``ts`` without ``-`` and ``:``),
    ``data_interval_start``, ``data_interval_end``, ``prev_data_interval_start_success``,
    ``prev_data_interval_end_success``, ``prev_start_date_success``, ``prev_end_date_success``
    (of the DAG's previous successful run, None without one), ``start_date`` (the try's start; now if not
    given), ``task_instance_key_str`` (``dagid__taskid__YYYYMMDD``), ``macros`` (:mod:`.macros`),
    ``params`` (the task's params — the DAG's, overridden by the task's own ``params=`` — with the run's
    conf on top unless ``conf_overrides_params`` is false, Airflow's ``core.dag_run_conf_overrides_params``;
    every value checked against its schema: ``ParamValidationError`` names the param), ``try_number``,
    ``var`` and ``conn`` (variables and connections, fetched on use:
    ``{{ var.value.key }}``, ``{{ var.json.key }}``, ``{{ conn.conn_id.host }}``),
    ``map_index`` (the task instance's, -1 when not mapped: ``ti.map_index``), ``expanded_ti_count`` (how many task instances a mapped task expanded to; None for an unmapped task —
    the runtime of mapped tasks passes it), ``map_index_template``, ``inlets`` and ``outlets`` (the task's
    assets), ``outlet_events``, ``inlet_events`` and ``triggering_asset_events``
    (:mod:`.asset_events`) and ``test_mode`` (True under ``headrace tasks test``).
    Dates are those of the run, in UTC. The DAG's ``user_defined_macros`` are the template environment's
    globals (:func:`make_jinja_env`), not context keys, as in Airflow.
    """
    logical = run.logical_date
    ds_nodash = logical.strftime("%Y%m%d")
    ts = logical.isoformat()
    previous = run.previous_success
    return {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": run,
        "run_id": run.run_id,
        "logical_date": logical,
        "ds": logical.strftime("%Y-%m-%d"),
        "ds_nodash": ds_nodash,
        "ts": ts,
        "ts_nodash": logical.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "task_instance_key_str": f"{dag.dag_id}__{task.task_id}__{ds_nodash}",
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "prev_data_interval_start_success": previous.data_interval_start if previous else None,
        "prev_data_interval_end_success": previous.data_interval_end if previous else None,
        "prev_start_date_success": previous.start_date if previous else None,
        "prev_end_date_success": previous.end_date if previous else None,
        "start_date": start_date or datetime.now(UTC),
        "macros": macros,
        "params": context_params(getattr(task, "params", dag.params), run.conf, conf_overrides=conf_overrides_params),
        "try_number": ti.try_number,
        "var": VariableAccessor(),
        "conn": ConnectionAccessor(),
        "expanded_ti_count": expanded_ti_count,
        "map_index": getattr(ti, "map_index", -1),
        "map_index_template": getattr(task, "map_index_template", None),
        "inlets": list(getattr(task, "inlets", None) or []),
        "outlets": list(getattr(task, "outlets", None) or []),
        "outlet_events": OutletEventAccessors(),
        "inlet_events": InletEventsAccessor(
            getattr(task, "inlets", None) or [], getattr(ti, "get_asset_events", None) or _no_events
        ),
        "triggering_asset_events": TriggeringAssetEvents(
            AssetEventInfo.from_dict(e) for e in run.triggering_asset_events
        ),
        "test_mode": test_mode,
    }


def _no_events(name: str, uri: str) -> list[dict[str, Any]]:
    """Inlet events where the runtime cannot fetch them (a context built outside a try): none."""
    return []


def context_kwargs(func: Callable[..., Any], context: Context, taken: Iterable[str] = ()) -> dict[str, Any]:
    """The context entries ``func`` asks for: those it names, or all of them if it has ``**kwargs``.

    Names in ``taken`` (already bound by explicit arguments) are left out.
    """
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    skip = set(taken)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in context.items() if k not in skip}
    return {
        name: context[name]
        for name, p in params.items()
        if name in context
        and name not in skip
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def call_with_context(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], context: Context
) -> Any:
    """Call ``func(*args, **kwargs)`` plus the context keys its signature names (all with ``**kwargs``).

    Explicit ``kwargs`` win over context keys; positional ``args`` fill the
    first parameters, which are then not filled from the context.
    """
    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        names = []
    bound_by_position = names[: len(args)]
    extra = context_kwargs(func, context, taken=[*kwargs, *bound_by_position])
    return func(*args, **{**extra, **kwargs})


def make_jinja_env(
    dag: DAG | None = None, searchpath: Iterable[str] = (), *, native: bool | None = None
) -> jinja2.Environment:
    """The Jinja environment template fields render in, made as Airflow's ``DAG.get_template_env``: sandboxed
    (``jinja2.sandbox``: no ``__dunder__`` attributes), with the ``do`` extension.

    Templates files are looked up in ``searchpath``, the DAG's ``template_searchpath`` and the folder of
    the DAG file. Undefined names are errors (``StrictUndefined``, or the DAG's ``template_undefined``).
    The DAG's ``user_defined_macros`` are globals (a context key of the same name wins) and its
    ``user_defined_filters`` are filters, beside Airflow's ``ds``, ``ds_nodash``, ``ts``, ``ts_nodash`` and
    ``ts_nodash_with_tz`` filters (for datetimes: ``{{ data_interval_end | ds }}``); its
    ``jinja_environment_kwargs`` are passed to the environment. ``native`` (default: the DAG's
    ``render_template_as_native_obj``) makes a ``jinja2.nativetypes.NativeEnvironment``: a template that
    is one expression renders as that Python object (``"{{ params.n }}"`` → ``3``, a list stays a list).
    Otherwise a datetime in ``{{ … }}`` renders as ISO 8601 (``2026-01-31T00:00:00+00:00``), as Airflow's
    pendulum datetimes do, so ported templates produce the same text.
    """
    paths = list(searchpath)
    if dag is not None:
        paths += dag.template_searchpath
        if dag.fileloc and os.path.exists(dag.fileloc):
            paths.append(os.path.dirname(os.path.abspath(dag.fileloc)))
    import jinja2  # here, not at the top: importing the authoring API renders nothing

    if native is None:
        native = bool(dag.render_template_as_native_obj) if dag is not None else False
    options: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(paths or ["."]),
        "undefined": (dag.template_undefined if dag is not None else None) or jinja2.StrictUndefined,
        "extensions": ["jinja2.ext.do"],
        "keep_trailing_newline": True,
        "autoescape": False,
    }
    if not native:
        options["finalize"] = _render_value
    if dag is not None:
        options.update(dag.jinja_environment_kwargs)
    sandboxed, native_class = _environment_classes()
    env: jinja2.Environment = (native_class if native else sandboxed)(**options)
    env.filters.update(TEMPLATE_FILTERS)
    if dag is not None:
        env.globals.update(dag.user_defined_macros)
        env.filters.update(dag.user_defined_filters)
    return env


@functools.cache
def _environment_classes() -> tuple[type[jinja2.Environment], type[jinja2.Environment]]:
    """Airflow's two template environments: sandboxed (the default) and native (not sandboxed, as in
    Airflow). The sandbox lets templates read ``_private`` attributes but never ``__dunder__`` ones."""
    import jinja2.nativetypes
    import jinja2.sandbox

    class SandboxedEnvironment(jinja2.sandbox.SandboxedEnvironment):
        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            return not jinja2.sandbox.is_internal_attribute(obj, attr)

    return SandboxedEnvironment, jinja2.nativetypes.NativeEnvironment


def _render_value(value: Any) -> Any:
    """How a value prints in a template: datetimes as ISO 8601, everything else as is."""
    return value.isoformat() if isinstance(value, datetime) else value


def _ds(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d")


def _ds_nodash(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y%m%d")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _ts_nodash(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y%m%dT%H%M%S")


def _ts_nodash_with_tz(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("-", "").replace(":", "")


TEMPLATE_FILTERS: dict[str, Callable[[datetime | None], str | None]] = {
    "ds": _ds,
    "ds_nodash": _ds_nodash,
    "ts": _ts,
    "ts_nodash": _ts_nodash,
    "ts_nodash_with_tz": _ts_nodash_with_tz,
}
"""Airflow's template filters, for any datetime: ``{{ prev_data_interval_end_success | ds }}`` (None stays
None), formatted as the context keys of the same names."""


_CURRENT: ContextVar[Context | None] = ContextVar("headrace_current_context", default=None)


def get_current_context() -> Context:
    """The context of the task running now (Airflow's ``get_current_context``): what ``execute`` received.

    For code deep inside a task that was not handed the context. Raises ``DagDefinitionError`` when
    called outside a running task (at DAG-file import, in the scheduler, in a plain script).
    """
    context = _CURRENT.get()
    if context is None:
        raise DagDefinitionError(
            "get_current_context() was called outside a running task: it works only while a task executes"
        )
    return context


@contextmanager
def current_context(context: Context) -> Iterator[None]:
    """Make ``context`` what :func:`get_current_context` returns inside the ``with`` block (the task's run)."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)
