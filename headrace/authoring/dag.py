"""The DAG: a named graph of tasks with a schedule.

``with DAG("etl", schedule="@daily", start_date=datetime(2024, 1, 1)):`` makes the
DAG current, so operators created inside join it. DAG contexts nest; the
innermost is current. ``DAG.validate()`` checks the graph (no cycles) and the
schedule, and every error names the file and line where the DAG was created.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from headrace.authoring.airflow_args import ignored_dag_arguments
from headrace.authoring.asset_timetables import make_any_timetable
from headrace.authoring.assets import BaseAsset
from headrace.authoring.expand_input import mapped_over_ids
from headrace.authoring.graph import cycle_error, find_cycle, topological_order
from headrace.authoring.params import ParamsDict, check_dag_params
from headrace.authoring.schedules import Timetable, ensure_aware
from headrace.exceptions import DagDefinitionError, DuplicateTaskIdError, ParamValidationError, TaskNotFound
from headrace.types import Callback

if TYPE_CHECKING:
    from headrace.authoring.task import BaseOperator
    from headrace.authoring.task_group import TaskGroup

_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
MAX_ID_LENGTH = 250
_HEADRACE_DIR = str(Path(__file__).resolve().parents[1])


def validate_id(kind: str, value: object, *, fileloc: str | None = None, lineno: int | None = None) -> str:
    """Return ``value`` if it is a valid dag_id/task_id, else raise ``DagDefinitionError``.

    Valid: a non-empty str of letters, digits, ``-``, ``_`` and ``.``, at most 250 chars.
    ``kind`` names the argument in the message (``"dag_id"`` or ``"task_id"``).
    """
    if not isinstance(value, str) or not value:
        raise DagDefinitionError(f"{kind} must be a non-empty string, got {value!r}", fileloc=fileloc, lineno=lineno)
    if len(value) > MAX_ID_LENGTH:
        raise DagDefinitionError(
            f"{kind} {value[:40]!r}… is {len(value)} characters long; the limit is {MAX_ID_LENGTH}",
            fileloc=fileloc,
            lineno=lineno,
        )
    if not _ID_RE.match(value):
        raise DagDefinitionError(
            f"{kind} {value!r} may contain only letters, digits, '-', '_' and '.'",
            fileloc=fileloc,
            lineno=lineno,
        )
    return value


_EXAMPLES_DIR = str(Path(_HEADRACE_DIR) / "example_dags")
"""The bundled example DAGs are user code, although they ship inside the package."""


def caller_location() -> tuple[str, int, str]:
    """Return ``(filename, lineno, module name)`` of the nearest frame outside headrace."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            filename = frame.f_code.co_filename
            inside = filename.startswith(_HEADRACE_DIR) and not filename.startswith(_EXAMPLES_DIR)
            if not inside and not filename.startswith("<frozen"):
                return filename, frame.f_lineno, str(frame.f_globals.get("__name__", ""))
            frame = frame.f_back
        return "<unknown>", 0, ""
    finally:
        del frame


DEADLINE_REFERENCES = ("logical_date", "run_start")
"""What a ``deadline`` counts from: the run's logical date, or when the run started."""


def _to_timedelta(value: timedelta | float | int | None, name: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise DagDefinitionError(f"{name} must be a timedelta or a number of seconds, got {value!r}")


class DagContext:
    """The stack of DAGs entered with ``with``; the last is the current DAG."""

    _stack: list[DAG] = []
    _autoregistered: dict[str, list[DAG]] = {}

    @classmethod
    def push(cls, dag: DAG) -> None:
        """Make ``dag`` the current DAG."""
        cls._stack.append(dag)

    @classmethod
    def pop(cls) -> DAG | None:
        """Leave the current DAG and return it (None if the stack was empty)."""
        return cls._stack.pop() if cls._stack else None

    @classmethod
    def current(cls) -> DAG | None:
        """The innermost DAG being defined, or None."""
        return cls._stack[-1] if cls._stack else None

    @classmethod
    def register(cls, dag: DAG) -> None:
        """Remember ``dag`` under the module that created it (see ``collect_dags``)."""
        dags = cls._autoregistered.setdefault(dag.module_name, [])
        if not any(d is dag for d in dags):
            dags.append(dag)

    @classmethod
    def take_registered(cls, module_name: str) -> list[DAG]:
        """Return and forget the DAGs registered by module ``module_name``."""
        return cls._autoregistered.pop(module_name, [])


class DAG:
    """A directed acyclic graph of tasks, with a schedule.

    Naive ``start_date``/``end_date`` are taken as UTC; they are stored
    timezone-aware, and cron schedules run in ``start_date``'s time zone.
    ``schedule``: a cron string, a preset (``@once``, ``@hourly``, ``@daily``,
    ``@weekly``, ``@monthly``, ``@yearly``), a ``timedelta``, ``None`` (only
    triggered runs; the default, as in Airflow 3), or assets: a list of assets (runs when all were updated),
    an asset condition (``a | b``, ``AssetAll``/``AssetAny``) or ``AssetOrTimeSchedule`` (see ``docs/assets.md``). ``max_active_runs`` /
    ``max_active_tasks`` of ``None`` mean "the deployment's default".
    ``default_args`` apply to every operator created in the DAG that accepts
    the key, unless the operator sets the argument itself; a key no task
    accepts, and Airflow operator arguments headrace does not support yet, are
    ignored with a DAG warning (:mod:`headrace.authoring.dag_warnings`).
    ``catchup`` of ``None`` (the default) means the deployment's
    ``scheduler.catchup_by_default`` (False unless configured, as in Airflow 3).
    ``dagrun_timeout`` (timedelta or seconds): a run that has been running
    longer fails; its running task instances fail with end reason
    ``dagrun_timeout`` (their tries are stopped) and those not started are skipped.

    ``deadline`` (timedelta or seconds): the run must have finished by
    ``deadline_reference`` (``"logical_date"`` or ``"run_start"``) plus this
    much; a miss — also a run that finished late — calls
    ``on_deadline_miss_callback(context)`` once and sends a ``deadline_missed``
    notification (see ``docs/alerts.md``).

    Templates (Airflow's arguments): ``template_searchpath`` (folders of template
    files, beside the DAG file's own), ``user_defined_macros`` (dict: names in
    every template), ``user_defined_filters`` (dict of Jinja filters),
    ``render_template_as_native_obj`` (True: a one-expression template renders as
    a Python object, not text), ``template_undefined`` (Jinja ``Undefined`` class;
    default ``StrictUndefined``) and ``jinja_environment_kwargs``.

    ``params`` (name → plain JSON value or :class:`~headrace.authoring.params.Param`)
    becomes a :class:`~headrace.authoring.params.ParamsDict`: every default must
    satisfy its param's schema, and with a schedule every param needs a default
    (scheduled runs use the defaults); a trigger's ``conf`` overrides them and
    is validated before the run is created.

    ``dag_display_name`` is the name the UI shows (any text; the dag_id if not
    given). ``is_paused_upon_creation`` decides whether the DAG starts paused
    when first parsed; None means ``core.dags_are_paused_at_creation``.

    Raises ``DagDefinitionError`` (bad id or argument) and ``ScheduleError``
    (bad schedule), both naming the file and line of the DAG.
    """

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: str | timedelta | Timetable | BaseAsset | Sequence[BaseAsset] | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool | None = None,
        default_args: dict[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        max_active_runs: int | None = None,
        max_active_tasks: int | None = None,
        tags: Iterable[str] | None = None,
        description: str | None = None,
        doc_md: str | None = None,
        on_success_callback: Callback | None = None,
        on_failure_callback: Callback | None = None,
        dagrun_timeout: timedelta | float | None = None,
        template_searchpath: str | Iterable[str] | None = None,
        deadline: timedelta | float | None = None,
        deadline_reference: str = "logical_date",
        on_deadline_miss_callback: Callback | None = None,
        user_defined_macros: Mapping[str, Any] | None = None,
        user_defined_filters: Mapping[str, Callable[..., Any]] | None = None,
        render_template_as_native_obj: bool = False,
        template_undefined: type | None = None,
        jinja_environment_kwargs: Mapping[str, Any] | None = None,
        dag_display_name: str | None = None,
        is_paused_upon_creation: bool | None = None,
        access_control: Mapping[str, Any] | None = None,
        owner_links: Mapping[str, str] | None = None,
        auto_register: bool = True,
        fail_fast: bool = False,
        max_consecutive_failed_dag_runs: int | None = None,
        disable_bundle_versioning: bool | None = None,
        sla_miss_callback: Callback | None = None,
    ) -> None:
        self.fileloc, self.lineno, self.module_name = caller_location()
        self.dag_id = validate_id("dag_id", dag_id, fileloc=self.fileloc, lineno=self.lineno)
        # As in Airflow, default_args may carry the DAG's start_date / end_date.
        start_date = start_date or (default_args or {}).get("start_date")
        end_date = end_date or (default_args or {}).get("end_date")
        self.start_date = ensure_aware(start_date) if start_date is not None else None
        self.end_date = ensure_aware(end_date) if end_date is not None else None
        self.timezone = self.start_date.tzinfo if self.start_date is not None else UTC
        self.schedule = schedule
        try:
            self.timetable = make_any_timetable(schedule, self.timezone or UTC)
        except DagDefinitionError as exc:
            exc.fileloc, exc.lineno = self.fileloc, self.lineno
            raise
        self.catchup: bool | None = None if catchup is None else bool(catchup)
        """None: the deployment's ``scheduler.catchup_by_default``, applied when the DAG is serialized."""
        self.default_args: dict[str, Any] = dict(default_args or {})
        self.params = self._checked_params(params, self.default_args.pop("params", None))
        for name, value in (("max_active_runs", max_active_runs), ("max_active_tasks", max_active_tasks)):
            if value is not None and (not isinstance(value, int) or value < 1):
                self._fail(f"{name} must be a positive int or None, got {value!r}")
        limit = self.timetable.active_runs_limit
        if limit is not None and max_active_runs is not None and max_active_runs > limit:
            self._fail(
                f"DAG {self.dag_id!r}: max_active_runs={max_active_runs} but schedule "
                f"{self.timetable.summary!r} allows at most {limit} active run(s)"
            )
        self.max_active_runs = limit if max_active_runs is None and limit is not None else max_active_runs
        self.max_active_tasks = max_active_tasks
        self.tags: list[str] = sorted(set(tags or []))
        self.description = description
        if dag_display_name is not None and (not isinstance(dag_display_name, str) or not dag_display_name.strip()):
            self._fail(f"DAG {self.dag_id!r}: dag_display_name must be a non-empty string, got {dag_display_name!r}")
        self._dag_display_name = dag_display_name
        if is_paused_upon_creation is not None and not isinstance(is_paused_upon_creation, bool):
            self._fail(
                f"DAG {self.dag_id!r}: is_paused_upon_creation must be True, False or None, "
                f"got {is_paused_upon_creation!r}"
            )
        self.is_paused_upon_creation = is_paused_upon_creation
        """None: the deployment's ``core.dags_are_paused_at_creation`` (True unless configured, as in Airflow)."""
        self.doc_md = doc_md
        self.ignored_arguments = ignored_dag_arguments(
            {
                "access_control": access_control,
                "owner_links": owner_links,
                "auto_register": auto_register,
                "fail_fast": fail_fast,
                "max_consecutive_failed_dag_runs": max_consecutive_failed_dag_runs,
                "disable_bundle_versioning": disable_bundle_versioning,
                "sla_miss_callback": sla_miss_callback,
            }
        )
        """Airflow DAG arguments given that headrace ignores (``IGNORED_DAG_ARGS``), each a DAG warning."""
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.on_deadline_miss_callback = on_deadline_miss_callback
        if deadline_reference not in DEADLINE_REFERENCES:
            self._fail(
                f"deadline_reference must be one of {', '.join(DEADLINE_REFERENCES)}, got {deadline_reference!r}"
            )
        self.deadline_reference = deadline_reference
        try:
            self.deadline = _to_timedelta(deadline, "deadline")
            self.dagrun_timeout = _to_timedelta(dagrun_timeout, "dagrun_timeout")
        except DagDefinitionError as exc:
            exc.fileloc, exc.lineno = self.fileloc, self.lineno
            raise
        if isinstance(template_searchpath, str):
            template_searchpath = [template_searchpath]
        self.template_searchpath: list[str] = list(template_searchpath or [])
        self._set_template_options(
            user_defined_macros,
            user_defined_filters,
            render_template_as_native_obj,
            template_undefined,
            jinja_environment_kwargs,
        )
        self.task_dict: dict[str, BaseOperator] = {}
        self._mapped_over: frozenset[str] | None = None
        self.task_group_dict: dict[str, TaskGroup] = {}
        """Task groups by full group id (``outer.inner``), in the order they were created."""
        self.edge_info: dict[tuple[str, str], dict[str, str]] = {}
        """``(upstream_id, downstream_id)`` → edge info (``{"label": text}``), set by ``Label``."""

    # --- context manager -----------------------------------------------------

    def __enter__(self) -> DAG:
        DagContext.push(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        DagContext.pop()
        if exc_type is None:
            DagContext.register(self)

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    @property
    def dag_display_name(self) -> str:
        """The name the UI shows: ``dag_display_name`` if given, else the dag_id (Airflow's rule)."""
        return self._dag_display_name or self.dag_id

    # --- tasks ---------------------------------------------------------------

    def _checked_params(self, params: Mapping[str, Any] | None, from_default_args: Any = None) -> ParamsDict:
        """``params`` as a ParamsDict, checked as Airflow checks them when a DAG file is parsed.

        ``default_args["params"]`` (``from_default_args``) is merged over ``params``, as in Airflow.

        Raises ``DagDefinitionError`` (with the DAG's file and line) for an invalid
        default, or for a param without default in a DAG with a schedule.
        """
        try:
            checked = ParamsDict(params)
            if from_default_args is not None:
                if not isinstance(from_default_args, Mapping):
                    raise DagDefinitionError(
                        f"default_args['params'] must be a dict, got {type(from_default_args).__name__}"
                    )
                for name, value in dict(from_default_args).items():
                    checked[name] = value  # ParamsDict: a plain value keeps an existing param's schema
            check_dag_params(checked, scheduled=self.schedule is not None)
        except (ParamValidationError, DagDefinitionError) as exc:
            self._fail(f"DAG {self.dag_id!r}: {exc.message}")
        return checked

    def _set_template_options(
        self,
        macros: Mapping[str, Any] | None,
        filters: Mapping[str, Callable[..., Any]] | None,
        native: bool,
        undefined: type | None,
        env_kwargs: Mapping[str, Any] | None,
    ) -> None:
        """Check and keep the DAG's template options (see :func:`~headrace.authoring.context.make_jinja_env`)."""
        for name, value in (("user_defined_macros", macros), ("user_defined_filters", filters)):
            if value is not None and not isinstance(value, Mapping):
                self._fail(f"DAG {self.dag_id!r}: {name} must be a dict, got {type(value).__name__}")
        for name, fn in (filters or {}).items():
            if not callable(fn):
                self._fail(f"DAG {self.dag_id!r}: user_defined_filters[{name!r}] is not callable")
        if undefined is not None and not isinstance(undefined, type):
            self._fail(f"DAG {self.dag_id!r}: template_undefined must be a class, got {undefined!r}")
        if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
            self._fail(f"DAG {self.dag_id!r}: jinja_environment_kwargs must be a dict")
        self.user_defined_macros: dict[str, Any] = dict(macros or {})
        """Names added to every template's globals (a context key of the same name wins, as in Airflow)."""
        self.user_defined_filters: dict[str, Callable[..., Any]] = dict(filters or {})
        """Jinja filters added to the template environment."""
        self.render_template_as_native_obj = bool(native)
        """Render templates with Jinja's NativeEnvironment: a one-expression template gives a Python object."""
        self.template_undefined = undefined
        """Jinja's ``Undefined`` class for templates; None: ``StrictUndefined`` (an undefined name fails)."""
        self.jinja_environment_kwargs: dict[str, Any] = dict(env_kwargs or {})
        """Extra keyword arguments of the Jinja environment (e.g. ``{"trim_blocks": True}``)."""

    def _fail(self, message: str) -> NoReturn:
        raise DagDefinitionError(message, fileloc=self.fileloc, lineno=self.lineno)

    def add_task(self, task: BaseOperator) -> None:
        """Add ``task`` to this DAG. Raises ``DuplicateTaskIdError`` if its id is taken."""
        existing = self.task_dict.get(task.task_id)
        if existing is task:
            return
        if task.task_id in self.task_group_dict:
            raise DuplicateTaskIdError(
                f"task_id {task.task_id!r} is already the id of a task group in DAG {self.dag_id!r}",
                fileloc=self.fileloc,
                lineno=self.lineno,
            )
        if existing is not None:
            raise DuplicateTaskIdError(
                f"task_id {task.task_id!r} has already been added to DAG {self.dag_id!r}",
                fileloc=self.fileloc,
                lineno=self.lineno,
            )
        self.task_dict[task.task_id] = task
        self._mapped_over = None

    def set_edge_info(self, upstream_id: str, downstream_id: str, info: dict[str, str]) -> None:
        """Attach ``info`` (``{"label": text}``) to the edge ``upstream_id`` → ``downstream_id``."""
        self.edge_info[(upstream_id, downstream_id)] = dict(info)

    def get_edge_info(self, upstream_id: str, downstream_id: str) -> dict[str, str]:
        """The edge's info (``{"label": text}``), ``{}`` if none was set."""
        return dict(self.edge_info.get((upstream_id, downstream_id), {}))

    def mapped_over_ids(self) -> frozenset[str]:
        """The ids of the tasks whose ``return_value`` a mapped task or mapped task group of this DAG maps over.

        Worked out on the first call once the DAG is complete and kept (adding a task forgets it): every try
        of an unmapped task asks it, and the fork server asks it once for the DAGs it preloads.
        """
        if self._mapped_over is None:
            self._mapped_over = mapped_over_ids(self.task_dict.values())
        return self._mapped_over

    @property
    def tasks(self) -> list[BaseOperator]:
        """The tasks, in the order they were added."""
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        """The task ids, in the order they were added."""
        return list(self.task_dict)

    def has_task(self, task_id: str) -> bool:
        """Whether the DAG has a task ``task_id``."""
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> BaseOperator:
        """Return the task ``task_id``. Raises ``TaskNotFound`` naming the DAG and the task."""
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise TaskNotFound(
                f"DAG {self.dag_id!r} has no task {task_id!r}", dag_id=self.dag_id, task_id=task_id
            ) from None

    @property
    def roots(self) -> list[BaseOperator]:
        """Tasks with no upstream task."""
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[BaseOperator]:
        """Tasks with no downstream task."""
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    def downstream_closure(self, task_id: str) -> set[str]:
        """All task ids reachable downstream from ``task_id`` (not including it)."""
        seen: set[str] = set()
        todo = list(self.get_task(task_id).downstream_task_ids)
        while todo:
            tid = todo.pop()
            if tid not in seen:
                seen.add(tid)
                todo.extend(self.get_task(tid).downstream_task_ids)
        return seen

    # --- checks --------------------------------------------------------------

    def _downstream(self) -> dict[str, set[str]]:
        """Task id → downstream task ids, in insertion order (the input of :mod:`headrace.authoring.graph`)."""
        return {tid: task.downstream_task_ids for tid, task in self.task_dict.items()}

    def validate(self) -> None:
        """Check the DAG: dependencies name tasks of this DAG, tasks right after a setup task use
        ``all_success`` (teardowns aside, as Airflow requires), no cycle, schedule needs a start_date.

        Raises ``DagCycleError`` with a message like ``cycle a → b → c → a`` and
        the DAG's ``fileloc:lineno``; ``DagDefinitionError`` for the rest.
        """
        for task in self.task_dict.values():
            for tid in task.upstream_task_ids | task.downstream_task_ids:
                if tid not in self.task_dict:
                    self._fail(f"task {task.task_id!r} depends on {tid!r}, which is not in DAG {self.dag_id!r}")
        for task in self.task_dict.values():
            if not task.is_setup:
                continue
            for tid in sorted(task.downstream_task_ids):
                down = self.task_dict[tid]
                if not down.is_teardown and down.trigger_rule != "all_success":
                    self._fail(
                        f"task {tid!r} follows setup task {task.task_id!r} with trigger_rule "
                        f"{down.trigger_rule.value!r}: tasks directly after a setup must use all_success (Airflow's rule)"
                    )
        cycle = find_cycle(self._downstream())
        if cycle is not None:
            raise cycle_error(cycle, dag_id=self.dag_id, fileloc=self.fileloc, lineno=self.lineno)
        if self.schedule is not None and self.timetable.can_be_scheduled and self.start_date is None:
            self._fail(f"DAG {self.dag_id!r} has schedule {self.timetable.summary!r} but no start_date")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            self._fail(f"DAG {self.dag_id!r}: end_date {self.end_date} is before start_date {self.start_date}")

    def topological_order(self) -> list[BaseOperator]:
        """Tasks with every task after all its upstream tasks (ties in insertion order).

        Raises ``DagCycleError`` if there is a cycle.
        """
        ids = topological_order(self._downstream(), dag_id=self.dag_id, fileloc=self.fileloc, lineno=self.lineno)
        return [self.task_dict[tid] for tid in ids]


def current_dag() -> DAG | None:
    """The DAG being defined by the innermost ``with DAG(...)`` (or ``@dag`` call), or None."""
    return DagContext.current()


__all__ = ["DAG", "DEADLINE_REFERENCES", "DagContext", "MAX_ID_LENGTH", "caller_location", "current_dag", "validate_id"]
