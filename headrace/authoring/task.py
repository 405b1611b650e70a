"""BaseOperator: one task of a DAG, with its retry policy, limits and dependencies.

Operators are created inside ``with DAG(...)`` (or with ``dag=``) and joined with
``>>`` / ``<<``: ``extract >> [clean, check] >> load``. Arguments not given to an
operator are taken from the DAG's ``default_args`` when the operator accepts them,
as in Airflow.

Nothing a DAG author writes vanishes silently: an argument no operator knows
raises ``DagDefinitionError``; an Airflow operator argument headrace does not
support yet (:data:`AIRFLOW_OPERATOR_ARGS` less what the operator accepts, e.g.
``email_on_failure``, ``sla``, ``depends_on_past``) is accepted, ignored and
noted in ``ignored_arguments``, which the DAG processor reports as a DAG
warning (see :mod:`headrace.authoring.dag_warnings`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from headrace.authoring.airflow_args import AIRFLOW_OPERATOR_ARGS
from headrace.authoring.assets import BaseAsset, check_lineage
from headrace.authoring.context import make_jinja_env
from headrace.authoring.dag import DAG, DagContext, validate_id
from headrace.authoring.edges import Label
from headrace.authoring.expand_input import ExpandInput
from headrace.authoring.operator_args import apply_default_args as _apply_default_args
from headrace.authoring.params import ParamsDict
from headrace.authoring.setup_teardown import SetupTeardownContext, SetupTeardownMixin
from headrace.authoring.sizes import parse_memory_limit
from headrace.authoring.task_args import MAX_RETRY_DELAY as MAX_RETRY_DELAY
from headrace.authoring.task_args import accepted_arguments as accepted_arguments
from headrace.authoring.task_args import retry_delay_seconds as retry_delay_seconds
from headrace.authoring.task_args import to_timedelta as to_timedelta
from headrace.authoring.task_group import TaskGroup, group_of
from headrace.authoring.trigger_rules import TriggerRule
from headrace.authoring.triggers import TRIGGER_FAIL_REPR, TRIGGER_TIMEOUT, StartTriggerArgs
from headrace.authoring.weight_rule import WeightRule, default_weight_rule
from headrace.authoring.xcom import MappedArgument, MapXComArg, XComArg, ZipXComArg
from headrace.exceptions import DagDefinitionError, TaskDeferralError, TaskDeferralTimeout, TaskDeferred
from headrace.types import Callback, Context

if TYPE_CHECKING:
    import jinja2

    from headrace.authoring.mapped import OperatorPartial

__all__ = [
    "AIRFLOW_OPERATOR_ARGS",
    "WEIGHT_RULES",
    "BaseOperator",
    "accepted_arguments",
    "chain",
    "parse_memory_limit",
    "retry_delay_seconds",
    "to_timedelta",
]

WEIGHT_RULES: tuple[str, ...] = tuple(r.value for r in WeightRule)
"""Airflow's weight rules: a task instance's priority is its ``priority_weight`` plus those of every task
downstream of it (``downstream``, the default), upstream of it (``upstream``), or its own alone (``absolute``)."""


def _callbacks(value: Callback | list[Callback] | None) -> list[Callback]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class BaseOperator(SetupTeardownMixin, ABC):
    """A task: what to run (``execute``) and how (retries, limits, pool, trigger rule).

    ``retry_delay`` / ``max_retry_delay`` / ``execution_timeout`` take a
    timedelta or seconds. ``memory_limit`` takes bytes or a string like
    ``"512MiB"`` (see :func:`parse_memory_limit`). ``deadline`` (timedelta or
    seconds after ``deadline_reference``: ``"logical_date"`` or ``"run_start"``)
    is when the task instance must have finished; a miss calls
    ``on_deadline_miss_callback`` once (see ``docs/alerts.md``). ``queue`` names
    the queue the task is routed to: the sequential and local executors have one
    queue and run every task whatever it says; the scale-out (Celery) work routes
    tries on it, as Airflow's CeleryExecutor does.

    Scheduling, as in Airflow: ``weight_rule`` (:data:`WEIGHT_RULES`, default
    ``core.default_task_weight_rule``, itself ``downstream`` by default) sums ``priority_weight`` over the downstream / upstream
    tasks into the task instance's queueing priority; ``depends_on_past``
    holds a task instance until the same task succeeded (or was skipped) in
    the DAG's previous run by logical date, and ``wait_for_downstream`` (which
    implies it) also until that run's direct downstream tasks of it did;
    ``ignore_first_depends_on_past`` lets it run when the task has no earlier
    task instance at all; ``wait_for_past_depends_before_skipping`` holds a
    task instance that would be skipped (by its trigger rule, a branch or a
    short circuit) until ``depends_on_past`` lets it go, then skips it. ``outlets``: assets (or aliases) a successful try
    updates (one asset event each, see ``docs/assets.md``); ``inlets``: assets it
    reads. ``on_execute_callback(context)`` is called in the
    task process before ``execute``; ``on_skipped_callback(context)`` when the
    try ends skipped by ``SkipTask``. Setup/teardown: see
    :mod:`headrace.authoring.setup_teardown`. Raises ``DagDefinitionError``
    for a bad argument and ``DuplicateTaskIdError`` if the DAG already has
    ``task_id``. ``render_template_as_native_obj`` overrides the DAG's for this
    task (None: the DAG's; see ``docs/templates.md``).
    """

    template_fields: Sequence[str] = ()
    """Attribute names rendered with Jinja before ``execute``."""
    template_ext: Sequence[str] = ()
    """A template field value ending in one of these is read as a template file."""
    ui_color: str = "#fff"
    render_template_as_native_obj: bool | None = None
    expand_input: ExpandInput | None = None
    """What a mapped task expands over (:class:`MappedOperator`); None for a task that is not mapped."""
    ignored_arguments: tuple[str, ...] = ()
    """Airflow operator arguments given to this operator that headrace does not support yet (ignored)."""
    argument_notes: tuple[tuple[str, str], ...] = ()
    """``(argument, why it changes nothing here)`` for arguments an operator accepts but cannot act on as
    Airflow does (e.g. ``expect_airflow=True``); reported as DAG warnings like ``ignored_arguments``."""
    not_templates: frozenset[int] | set[int] = frozenset()
    """``id()`` of values :meth:`render_template_fields` leaves as they are (mapped arguments pulled from XCom)."""
    params: ParamsDict
    """The DAG's params, overridden by the task's ``params=`` (see :func:`~headrace.authoring.params.task_params`)."""
    pre_execute_hook: Callable[[Context], None] | None = None
    """Called with the context right before ``execute`` (``@task.run_if`` / ``skip_if``); may raise ``SkipTask``."""
    start_trigger_args: StartTriggerArgs | None = None
    """The trigger a try starts in when ``start_from_trigger`` (see :mod:`headrace.authoring.start_trigger`)."""
    start_from_trigger: bool = False
    """Start every try in the triggerer, with no process until ``start_trigger_args``' trigger fires (Airflow's)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            setattr(cls, "__init__", _apply_default_args(cls.__dict__["__init__"]))  # noqa: B010 - mypy forbids assigning a method

    @_apply_default_args
    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        owner: str = "headrace",
        retries: int = 0,
        retry_delay: timedelta | float = timedelta(seconds=300),
        retry_exponential_backoff: bool = False,
        max_retry_delay: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
        pool: str = "default_pool",
        pool_slots: int = 1,
        priority_weight: int = 1,
        weight_rule: WeightRule | str | None = None,
        queue: str = "default",
        memory_limit: int | str | None = None,
        multiple_outputs: bool = False,
        on_failure_callback: Callback | list[Callback] | None = None,
        on_success_callback: Callback | list[Callback] | None = None,
        on_retry_callback: Callback | list[Callback] | None = None,
        on_execute_callback: Callback | list[Callback] | None = None,
        on_skipped_callback: Callback | list[Callback] | None = None,
        depends_on_past: bool = False,
        wait_for_downstream: bool = False,
        ignore_first_depends_on_past: bool = False,
        wait_for_past_depends_before_skipping: bool = False,
        on_deadline_miss_callback: Callback | list[Callback] | None = None,
        deadline: timedelta | float | None = None,
        deadline_reference: str = "logical_date",
        doc: str | None = None,
        doc_md: str | None = None,
        task_group: TaskGroup | None = None,
        render_template_as_native_obj: bool | None = None,
        max_active_tis_per_dag: int | None = None,
        max_active_tis_per_dagrun: int | None = None,
        map_index_template: str | None = None,
        inlets: Any = None,
        outlets: Any = None,
    ) -> None:
        dag = dag if dag is not None else DagContext.current()
        group = group_of(dag, task_group)
        if group is not None and dag is not None and group.dag is not dag:
            raise DagDefinitionError(
                f"task {task_id!r} is in DAG {dag.dag_id!r} but its task group {group.group_id!r} "
                f"is in DAG {group.dag.dag_id!r}",
                fileloc=dag.fileloc,
                lineno=dag.lineno,
            )
        dag = group.dag if group is not None else dag
        where = {"fileloc": dag.fileloc, "lineno": dag.lineno} if dag else {}
        label = validate_id("task_id", task_id, **where)  # type: ignore[arg-type]
        self.task_id = group.child_id(label) if group is not None else label
        self.task_group: TaskGroup | None = group
        """The innermost task group the task is in (None: the DAG's top level)."""
        self.owner = owner
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise DagDefinitionError(f"task {task_id!r}: retries must be an int ≥ 0, got {retries!r}")
        self.retries = retries
        self.retry_delay: timedelta = to_timedelta(retry_delay, "retry_delay") or timedelta(0)
        self.retry_exponential_backoff = bool(retry_exponential_backoff)
        self.max_retry_delay = to_timedelta(max_retry_delay, "max_retry_delay")
        self.execution_timeout = to_timedelta(execution_timeout, "execution_timeout")
        try:
            self.trigger_rule = TriggerRule(trigger_rule)
        except ValueError:
            raise DagDefinitionError(
                f"task {task_id!r}: unknown trigger_rule {trigger_rule!r}; "
                f"known: {', '.join(r.value for r in TriggerRule)}"
            ) from None
        for name, number in (("pool_slots", pool_slots), ("priority_weight", priority_weight)):
            if not isinstance(number, int) or isinstance(number, bool) or (name == "pool_slots" and number < 1):
                raise DagDefinitionError(f"task {task_id!r}: {name} must be an int, got {number!r}")
        self.pool = pool
        self.pool_slots = pool_slots
        self.priority_weight = priority_weight
        if weight_rule is None:  # Airflow's core.default_task_weight_rule (downstream unless configured)
            weight_rule = default_weight_rule()
        if not isinstance(weight_rule, str):
            raise DagDefinitionError(
                f"task {task_id!r}: weight_rule={type(weight_rule).__name__}(…): custom PriorityWeightStrategy "
                "classes are not supported (the scheduler computes priorities from the serialized DAG and never "
                f"imports DAG code; Airflow needs them registered by a plugin); use one of {', '.join(WEIGHT_RULES)}"
            )
        if weight_rule not in WEIGHT_RULES:
            raise DagDefinitionError(
                f"task {task_id!r}: weight_rule must be one of {', '.join(WEIGHT_RULES)}, got {weight_rule!r}"
            )
        self.weight_rule = WeightRule(weight_rule).value
        self.wait_for_downstream = bool(wait_for_downstream)
        self.depends_on_past = bool(depends_on_past) or self.wait_for_downstream
        self.ignore_first_depends_on_past = bool(ignore_first_depends_on_past)
        self.wait_for_past_depends_before_skipping = bool(wait_for_past_depends_before_skipping)
        self.queue = queue
        self.memory_limit = parse_memory_limit(memory_limit)
        self.multiple_outputs = bool(multiple_outputs)
        self.on_failure_callback = _callbacks(on_failure_callback)
        self.on_success_callback = _callbacks(on_success_callback)
        self.on_retry_callback = _callbacks(on_retry_callback)
        self.on_execute_callback = _callbacks(on_execute_callback)
        self.on_skipped_callback = _callbacks(on_skipped_callback)
        self.on_deadline_miss_callback = _callbacks(on_deadline_miss_callback)
        self.deadline = to_timedelta(deadline, "deadline")
        if deadline_reference not in ("logical_date", "run_start"):
            raise DagDefinitionError(
                f"task {task_id!r}: deadline_reference must be 'logical_date' or "
                f"'run_start', got {deadline_reference!r}"
            )
        self.deadline_reference = deadline_reference
        self.doc = doc
        self.doc_md = doc_md
        self.render_template_as_native_obj = render_template_as_native_obj
        """Render this task's fields as native objects (True) or text (False); None: the DAG's setting."""
        for name, limit in (
            ("max_active_tis_per_dag", max_active_tis_per_dag),
            ("max_active_tis_per_dagrun", max_active_tis_per_dagrun),
        ):
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                raise DagDefinitionError(f"task {task_id!r}: {name} must be an int ≥ 1 or None, got {limit!r}")
        self.max_active_tis_per_dag = max_active_tis_per_dag
        """At most this many task instances of the task queued or running at once, over all runs."""
        self.max_active_tis_per_dagrun = max_active_tis_per_dagrun
        """At most this many task instances of the task queued or running at once in one DAG run."""
        if map_index_template is not None and not isinstance(map_index_template, str):
            raise DagDefinitionError(
                f"task {task_id!r}: map_index_template must be a str (a Jinja template) or None, "
                f"got {type(map_index_template).__name__}"
            )
        self.map_index_template = map_index_template
        """A mapped task instance's label (Airflow's): rendered with the try's context when its code ends, also
        when it fails; the task may set ``context["map_index_template"]`` to replace it (see ``docs/mapping.md``)."""
        try:
            self.inlets: list[BaseAsset] = list(check_lineage(self.task_id, "inlets", inlets))
            """Assets the task reads (``inlet_events[asset]`` in its context lists their events)."""
            self.outlets: list[BaseAsset] = list(check_lineage(self.task_id, "outlets", outlets))
            """Assets (and aliases) the task updates: a successful try records an asset event for each."""
        except (TypeError, ValueError) as exc:
            raise DagDefinitionError(str(exc), **where) from None  # type: ignore[arg-type]
        if self.start_trigger_args is not None:  # the class's: this task's own copy, to change in __init__
            self.start_trigger_args = self.start_trigger_args.copy()
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.dag: DAG | None = None
        if dag is not None:
            dag.add_task(self)
            self.dag = dag
        if group is not None:
            group.add(self)
        SetupTeardownContext.note_task(self)

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

    @property
    def log(self) -> logging.Logger:
        """The operator's logger, Airflow's ``self.log``: ``headrace.task.operators.<module>.<class>``.

        In a running try its records go to the try's log, as every logger's do.
        """
        cls = type(self)
        return logging.getLogger(f"headrace.task.operators.{cls.__module__}.{cls.__qualname__}")

    @property
    def operator_name(self) -> str:
        """The operator's class name (``"PythonOperator"``, ``"@task"`` operators report theirs)."""
        return type(self).__name__

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """The arguments every mapped task instance shares: ``Op.partial(task_id=..., ...).expand(x=[1, 2])``.

        Raises ``TypeError`` without ``task_id`` or for an argument the operator does not take.
        """
        from headrace.authoring.mapped import OperatorPartial  # it imports this module: imported at call time

        return OperatorPartial(cls, kwargs)

    @property
    def is_mapped(self) -> bool:
        """True for a mapped task (``expand``) and for every task of a mapped task group."""
        return self.expand_input is not None or self.mapped_group() is not None

    def task_groups_chain(self) -> list[TaskGroup]:
        """The task's group, then its parent groups, out to the DAG's top level."""
        chain: list[TaskGroup] = []
        group = self.task_group
        while group is not None:
            chain.append(group)
            group = group.parent_group
        return chain

    def mapped_group(self) -> TaskGroup | None:
        """The innermost mapped task group the task is in (``my_group.expand(...)``), or None."""
        return next((g for g in self.task_groups_chain() if g.expand_input is not None), None)

    @property
    def max_tries(self) -> int:
        """Airflow's ``max_tries``: the number of retries (a try may retry while ``try_number <= retries``)."""
        return self.retries

    @abstractmethod
    def execute(self, context: Context) -> Any:
        """Do the work of one try. The return value is pushed as XCom ``return_value``."""

    # --- deferral ------------------------------------------------------------

    def defer(
        self,
        *,
        trigger: Any,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | float | None = None,
    ) -> NoReturn:
        """Hand the wait to ``trigger`` (a :class:`~headrace.authoring.triggers.BaseTrigger`) and end this process.

        The task instance becomes ``deferred`` (no process, no slot); on the trigger's first event it resumes,
        in the same try and a new process, as ``getattr(self, method_name)(context, event=payload, **kwargs)``.
        ``timeout`` (seconds or timedelta): the longest wait, after which the task fails with
        ``TaskDeferralTimeout``. Raises ``TaskDeferred`` (always); ``DagDefinitionError`` for a
        ``method_name`` this operator does not have.
        """
        if not callable(getattr(self, method_name, None)):
            raise DagDefinitionError(f"task {self.task_id!r}: defer(method_name={method_name!r}): no such method")
        raise TaskDeferred(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Called instead of ``execute`` when the task resumes from a deferral: ``next_method(context,
        **next_kwargs)`` (``next_kwargs`` holds the trigger's ``event``).

        ``next_method == "__fail__"`` (Airflow's marker) means the trigger failed or timed out: raises
        ``TaskDeferralTimeout`` (``next_kwargs["error"] == "Trigger timeout"``) or ``TaskDeferralError``, after
        logging the trigger's traceback.
        """
        next_kwargs = dict(next_kwargs or {})
        if next_method == TRIGGER_FAIL_REPR:
            trace = next_kwargs.get("traceback")
            if trace:
                print("Trigger failed:\n" + "".join(trace), flush=True)
            error = str(next_kwargs.get("error", "Unknown"))
            if error == TRIGGER_TIMEOUT:
                raise TaskDeferralTimeout(error)
            raise TaskDeferralError(error)
        return getattr(self, next_method)(context, **next_kwargs)

    # --- retries -------------------------------------------------------------

    def retry_delay_for(self, try_number: int) -> float:
        """Seconds to wait before the try after try ``try_number`` (1-based) failed.

        Without backoff: ``retry_delay``. With ``retry_exponential_backoff``:
        ``retry_delay * 2 ** (try_number - 1)``, capped at ``max_retry_delay``
        (or 24 h if unset). Airflow adds a random-looking jitter to the backoff;
        we don't, so the delay is predictable.
        """
        return retry_delay_seconds(
            self.retry_delay.total_seconds(),
            try_number,
            exponential=self.retry_exponential_backoff,
            max_delay=self.max_retry_delay.total_seconds() if self.max_retry_delay else None,
        )

    # --- dependencies --------------------------------------------------------

    def _relate(self, others: object, upstream: bool, edge_modifier: Label | None = None) -> None:
        # the other side of a group: its leaves when it is upstream, its roots when downstream
        for other in _as_operators(others, "leaves" if upstream else "roots"):
            if other is self:
                raise DagDefinitionError(f"task {self.task_id!r} cannot depend on itself")
            dag = self.dag or other.dag
            if self.dag is not None and other.dag is not None and self.dag is not other.dag:
                raise DagDefinitionError(
                    f"tasks {self.task_id!r} and {other.task_id!r} are in different DAGs "
                    f"({self.dag.dag_id!r}, {other.dag.dag_id!r})"
                )
            for task in (self, other):
                if task.dag is None and dag is not None:
                    dag.add_task(task)
                    task.dag = dag
            up, down = (other, self) if upstream else (self, other)
            up.downstream_task_ids.add(down.task_id)
            down.upstream_task_ids.add(up.task_id)
            if edge_modifier is not None and dag is not None:
                dag.set_edge_info(up.task_id, down.task_id, {"label": edge_modifier.label})

    @property
    def output(self) -> XComArg:
        """The task's return value as an XComArg (Airflow's ``.output``): pass it to another task's arguments or
        templated fields, which then depend on this task."""
        return XComArg(self)

    def set_downstream(self, other: object, edge_modifier: Label | None = None) -> None:
        """Make ``other`` (a task, task group, XComArg or list of them) run after this task.

        ``edge_modifier``: a :class:`~headrace.authoring.edges.Label` put on the new edges.
        """
        if isinstance(other, Label):
            other.add_upstream(self)
            return
        self._relate(other, upstream=False, edge_modifier=edge_modifier)

    def set_upstream(self, other: object, edge_modifier: Label | None = None) -> None:
        """Make ``other`` (a task, task group, XComArg or list of them) run before this task.

        ``edge_modifier``: a :class:`~headrace.authoring.edges.Label` put on the new edges.
        """
        if isinstance(other, Label):
            other.add_downstream(self)
            return
        self._relate(other, upstream=True, edge_modifier=edge_modifier)

    def __rshift__(self, other: _Relatable) -> _Relatable:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: _Relatable) -> _Relatable:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: _Relatable) -> BaseOperator:
        """``[a, b] >> self``."""
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: _Relatable) -> BaseOperator:
        """``[a, b] << self``."""
        self.set_downstream(other)
        return self

    @property
    def upstream_list(self) -> list[BaseOperator]:
        """The direct upstream tasks (needs a DAG)."""
        return [self._dag().get_task(t) for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list[BaseOperator]:
        """The direct downstream tasks (needs a DAG)."""
        return [self._dag().get_task(t) for t in sorted(self.downstream_task_ids)]

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        """All task ids upstream (or downstream) of this task, transitively."""
        dag = self._dag()
        seen: set[str] = set()
        todo = list(self.upstream_task_ids if upstream else self.downstream_task_ids)
        while todo:
            tid = todo.pop()
            if tid not in seen:
                seen.add(tid)
                task = dag.get_task(tid)
                todo.extend(task.upstream_task_ids if upstream else task.downstream_task_ids)
        return seen

    def _dag(self) -> DAG:
        if self.dag is None:
            raise DagDefinitionError(f"task {self.task_id!r} is not in a DAG")
        return self.dag

    # --- templates -----------------------------------------------------------

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render every attribute in ``template_fields`` in place with Jinja.

        Strings are rendered (a string ending in one of ``template_ext`` is loaded
        as a template file from the DAG's folder / ``template_searchpath``);
        lists, tuples and dict values recursively; other values are left as they
        are. Raises ``DagDefinitionError`` naming the field when a variable is
        undefined or the template is broken.
        """
        import jinja2  # here, not at the top: commands that only read DAGs (dags trigger) never render

        env = jinja_env or make_jinja_env(self.dag, native=self.render_template_as_native_obj)
        for field in self.template_fields:
            value = getattr(self, field)
            try:
                rendered = self._render(value, context, env)
            except jinja2.TemplateError as exc:
                raise DagDefinitionError(
                    f"cannot render template field {field!r} of task {self.task_id!r}: {type(exc).__name__}: {exc}",
                    fileloc=self.dag.fileloc if self.dag else None,
                ) from exc
            setattr(self, field, rendered)

    def _render(self, value: Any, context: Context, env: jinja2.Environment) -> Any:
        if id(value) in self.not_templates:  # a mapped argument pulled from XCom: data, not a template
            return value
        if isinstance(value, (XComArg, MapXComArg, ZipXComArg, MappedArgument)):
            return value.resolve(context)  # a reference in a field: its value, pulled now and not rendered
        if isinstance(value, str):
            if self.template_ext and value.endswith(tuple(self.template_ext)):
                return env.get_template(value).render(context)
            return env.from_string(value).render(context)
        if isinstance(value, list):
            return [self._render(v, context, env) for v in value]
        if isinstance(value, tuple):
            return tuple(self._render(v, context, env) for v in value)
        if isinstance(value, dict):
            return {k: self._render(v, context, env) for k, v in value.items()}
        return value


_Relatable = TypeVar("_Relatable", "BaseOperator", "XComArg", TaskGroup, Label, "list[Any]", "Sequence[Any]")


def _as_operators(value: object, side: str = "roots") -> list[BaseOperator]:
    """Flatten a task, task group, XComArg (anything with ``.operator``) or an iterable of them.

    A group stands for its ``side``: ``"roots"`` (it is downstream) or ``"leaves"`` (it is upstream).
    """
    if isinstance(value, BaseOperator):
        return [value]
    if isinstance(value, TaskGroup):
        return value._members(side)
    operator = getattr(value, "operator", None)
    if isinstance(operator, BaseOperator):
        return [operator]
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return [op for item in value for op in _as_operators(item, side)]
    raise DagDefinitionError(f"cannot set a dependency on {value!r}: not a task, task group or XComArg")


def _link(left: object, right: object) -> None:
    """``left >> right`` for :func:`chain`: tasks, groups, XComArgs, labels or lists of them."""
    if isinstance(left, (list, tuple)):
        for item in left:
            _link(item, right)
    elif isinstance(right, (list, tuple)):
        for item in right:
            _link(left, item)
    elif isinstance(left, Label):
        left.set_downstream(right)
    elif isinstance(right, Label):
        right.add_upstream(left)
    else:
        for op in _as_operators(left, "leaves"):
            op.set_downstream(right)


def chain(*tasks: object) -> None:
    """Chain tasks in order: ``chain(a, [b, c], d)`` is ``a >> [b, c] >> d``.

    Two adjacent lists are joined pairwise (``chain([a, b], [c, d])`` is
    ``a >> c, b >> d``) and must have the same length, else ``DagDefinitionError``.
    Items may be operators, task groups (their leaves upstream, roots
    downstream), XComArgs and ``Label``s (``chain(a, Label("x"), b)``;
    ``chain(a, [Label("x"), Label("y")], [b, c])`` labels each branch).
    """
    for left, right in zip(tasks, tasks[1:]):
        left_is_list = isinstance(left, (list, tuple))
        right_is_list = isinstance(right, (list, tuple))
        if left_is_list and right_is_list:
            assert isinstance(left, (list, tuple)) and isinstance(right, (list, tuple))
            if len(left) != len(right):
                raise DagDefinitionError(
                    f"chain() got lists of different lengths next to each other: {len(left)} and {len(right)}"
                )
            for up, down in zip(left, right):
                _link(up, down)
        else:
            _link(left, right)


def __getattr__(name: str) -> type[Any]:
    """``MappedOperator`` and ``OperatorPartial``, which live in :mod:`headrace.authoring.mapped` (a module that
    imports this one, so it is imported on first use); raises ``AttributeError`` for any other name."""
    if name in ("MappedOperator", "OperatorPartial"):
        from headrace.authoring import mapped

        found: type[Any] = getattr(mapped, name)
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
