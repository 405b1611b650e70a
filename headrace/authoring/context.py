"""The context a task's code sees: what runs, in which DAG run, and how to talk to the runtime.

``build_context`` makes the dict passed to ``execute(context)``, to templates
and (key by key) to callables. The runtime supplies a :class:`RunInfo` and an
object implementing :class:`RuntimeTI` (XCom and skipping go through it to the
supervisor; authoring never touches the database).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from headrace.authoring.secrets import ConnectionAccessor, VariableAccessor
from headrace.exceptions import DagDefinitionError
from headrace.types import Context

if TYPE_CHECKING:
    import jinja2

    from headrace.authoring.dag import DAG
    from headrace.authoring.task import BaseOperator


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

    @classmethod
    def from_run(cls, run: Any) -> RunInfo:
        """The RunInfo of a ``dag_run`` row (an ORM object or a Row with the same column names).

        A run without a logical date uses its ``queued_at``; a missing data interval end is the logical date.
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


def build_context(dag: DAG, task: BaseOperator, run: RunInfo, ti: RuntimeTI) -> Context:
    """Return the context of one try.

    Keys: ``dag``, ``task``, ``ti`` and ``task_instance`` (the same RuntimeTI),
    ``dag_run`` (the RunInfo), ``run_id``, ``logical_date``, ``ds``
    (``YYYY-MM-DD``), ``ds_nodash``, ``ts`` (ISO 8601), ``ts_nodash``
    (``YYYYMMDDTHHMMSS``), ``data_interval_start``, ``data_interval_end``,
    ``params`` (the DAG params' defaults, the run's conf on top: the conf was
    validated against the params' schemas when the run was created), ``try_number``,
    ``var`` and ``conn`` (variables and connections, fetched on use:
    ``{{ var.value.key }}``, ``{{ var.json.key }}``, ``{{ conn.conn_id.host }}``).
    Dates are those of the run, in UTC.
    """
    logical = run.logical_date
    return {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": run,
        "run_id": run.run_id,
        "logical_date": logical,
        "ds": logical.strftime("%Y-%m-%d"),
        "ds_nodash": logical.strftime("%Y%m%d"),
        "ts": logical.isoformat(),
        "ts_nodash": logical.strftime("%Y%m%dT%H%M%S"),
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "params": {**dag.params.dump(), **dict(run.conf)},
        "try_number": ti.try_number,
        "var": VariableAccessor(),
        "conn": ConnectionAccessor(),
    }


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


def make_jinja_env(dag: DAG | None = None, searchpath: Iterable[str] = ()) -> jinja2.Environment:
    """A Jinja environment for template fields: ``StrictUndefined`` (an undefined name is an error).

    Templates files are looked up in ``searchpath``, the DAG's
    ``template_searchpath`` and the folder of the DAG file. A datetime in
    ``{{ … }}`` renders as ISO 8601 (``2026-01-31T00:00:00+00:00``), as
    Airflow's pendulum datetimes do, so ported templates produce the same text.
    """
    paths = list(searchpath)
    if dag is not None:
        paths += dag.template_searchpath
        if dag.fileloc and os.path.exists(dag.fileloc):
            paths.append(os.path.dirname(os.path.abspath(dag.fileloc)))
    import jinja2  # here, not at the top: importing the authoring API renders nothing

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths or ["."]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_render_value,
    )


def _render_value(value: Any) -> Any:
    """How a value prints in a template: datetimes as ISO 8601, everything else as is."""
    return value.isoformat() if isinstance(value, datetime) else value


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
