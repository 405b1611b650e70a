"""``@dag`` and ``@task``: the TaskFlow way to write DAGs (``@dag`` itself is in :mod:`.dag_factory`).

::

    @dag(schedule="@daily", start_date=datetime(2024, 1, 1))
    def etl():
        @task(retries=2, memory_limit="1GiB")
        def extract() -> dict[str, int]:
            return {"rows": 3}

        @task
        def load(rows: int) -> None: ...

        load(extract()["rows"])

    etl()

Calling a ``@task`` function inside a DAG creates a task and returns an
:class:`XComArg`; passing an XComArg (also inside lists or dicts) to another
task function makes that task downstream and hands it the value at run time.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar, overload

from headrace.authoring.context import call_with_context, make_jinja_env
from headrace.authoring.dag import DAG, DagContext
from headrace.authoring.dag_factory import DagFactory as DagFactory
from headrace.authoring.dag_factory import dag as dag
from headrace.authoring.expand_input import (
    DictOfListsExpandInput,
    ExpandInput,
    ListOfDictsExpandInput,
    check_expand_kwargs,
    check_mappable,
    prevent_duplicates,
)
from headrace.authoring.mapped import MappedOperator, OperatorPartial
from headrace.authoring.operators import BashOperator, BranchPythonOperator, PythonOperator, ShortCircuitOperator
from headrace.authoring.python_virtualenv import (
    BranchExternalPythonOperator,
    BranchPythonVirtualenvOperator,
    ExternalPythonOperator,
    PythonVirtualenvOperator,
)
from headrace.authoring.standard_sensors import PythonSensor
from headrace.authoring.task import BaseOperator
from headrace.authoring.task_group import TaskGroup, group_of
from headrace.authoring.xcom import XComArg, find_xcom_args, resolve_refs
from headrace.exceptions import DagDefinitionError, SkipTask
from headrace.types import Context

P = ParamSpec("P")
R = TypeVar("R")


class _DecoratedMixin:
    """Resolves XComArgs/DagParams in the arguments before calling the function."""

    decorator_name = "@task"
    task_id: str
    python_callable: Callable[..., Any]
    op_args: list[Any]
    op_kwargs: dict[str, Any]

    @property
    def operator_name(self) -> str:
        """The decorator that made the task (``@task``, ``@task.branch``, ``@task.short_circuit``)."""
        return self.decorator_name

    def execute_callable(self, context: Context) -> Any:
        """Call the function with its arguments resolved and the context keys it names."""
        args = resolve_refs(self.op_args, context)
        kwargs = resolve_refs(self.op_kwargs, context)
        return call_with_context(self.python_callable, args, kwargs, context)


class DecoratedPythonOperator(_DecoratedMixin, PythonOperator):
    """The operator behind ``@task``."""


class DecoratedBranchOperator(_DecoratedMixin, BranchPythonOperator):
    """The operator behind ``@task.branch``."""

    decorator_name = "@task.branch"


class DecoratedShortCircuitOperator(_DecoratedMixin, ShortCircuitOperator):
    """The operator behind ``@task.short_circuit``."""

    decorator_name = "@task.short_circuit"


class DecoratedSensorOperator(_DecoratedMixin, PythonSensor):
    """The operator behind ``@task.sensor``: the function is the poke, returning a bool or a ``PokeReturnValue``."""

    decorator_name = "@task.sensor"


class _DecoratedInterpreterMixin(_DecoratedMixin):
    """Resolves XComArgs/DagParams, then runs the function in the other interpreter."""

    def execute_callable(self, context: Context) -> Any:
        """Resolve the arguments, then run the function as the operator does (in its venv / interpreter)."""
        self.op_args = resolve_refs(self.op_args, context)
        self.op_kwargs = resolve_refs(self.op_kwargs, context)
        return super(_DecoratedMixin, self).execute_callable(context)  # type: ignore[misc]


class DecoratedVirtualenvOperator(_DecoratedInterpreterMixin, PythonVirtualenvOperator):
    """The operator behind ``@task.virtualenv``."""

    decorator_name = "@task.virtualenv"


class DecoratedExternalPythonOperator(_DecoratedInterpreterMixin, ExternalPythonOperator):
    """The operator behind ``@task.external_python``."""

    decorator_name = "@task.external_python"


class DecoratedBranchVirtualenvOperator(_DecoratedInterpreterMixin, BranchPythonVirtualenvOperator):
    """The operator behind ``@task.branch_virtualenv``."""

    decorator_name = "@task.branch_virtualenv"


class DecoratedBranchExternalPythonOperator(_DecoratedInterpreterMixin, BranchExternalPythonOperator):
    """The operator behind ``@task.branch_external_python``."""

    decorator_name = "@task.branch_external_python"


class DecoratedBashOperator(_DecoratedMixin, BashOperator):
    """The operator behind ``@task.bash``: the function returns the command, which then runs as a BashOperator's.

    The returned string is rendered as a template first. Raises ``TypeError`` when the function does
    not return a non-empty string.
    """

    decorator_name = "@task.bash"
    template_fields: Sequence[str] = ("op_args", "op_kwargs", "env", "cwd")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: list[Any] | None = None,
        op_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bash_command="", **kwargs)
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})

    def execute(self, context: Context) -> str | None:
        """Call the function for the command, render it, run it; return the last line of output."""
        command = self.execute_callable(context)
        if not isinstance(command, str) or not command.strip():
            raise TypeError("The returned value from the TaskFlow callable must be a non-empty string.")
        self.bash_command = self._render(command, context, make_jinja_env(self.dag))
        return super().execute(context)


Condition = Callable[[Context], "bool | tuple[bool, str | None]"]
"""A ``run_if`` / ``skip_if`` condition: gets the context, returns a bool or ``(bool, skip message)``."""


def _condition_hook(condition: Condition, message: str, *, skip_when: bool) -> Callable[[Context], None]:
    def pre_execute(context: Context) -> None:
        outcome = condition(context)
        text = message
        if isinstance(outcome, tuple):
            outcome, custom = outcome
            text = custom or message
        if bool(outcome) is skip_when:
            raise SkipTask(text)

    return pre_execute


def _chain_hooks(first: Callable[[Context], None] | None, then: Callable[[Context], None]) -> Callable[[Context], None]:
    if first is None:
        return then

    def both(context: Context) -> None:
        first(context)
        then(context)

    return both


_T = TypeVar("_T", "Task[Any, Any]", BaseOperator)


def _conditional(name: str, condition: Condition, skip_message: str | None, skip_when: bool) -> Callable[[_T], _T]:
    if not callable(condition):
        raise DagDefinitionError(f"@task.{name} needs a callable condition, got {condition!r}")
    hook = _condition_hook(condition, skip_message or "Task was skipped due to condition.", skip_when=skip_when)

    def decorate(target: Any) -> Any:  # _T → _T: a Task gives a Task, an operator itself
        if isinstance(target, Task):
            return target.with_pre_execute(hook)
        if isinstance(target, BaseOperator):
            target.pre_execute_hook = _chain_hooks(getattr(target, "pre_execute_hook", None), hook)
            return target
        raise TypeError(
            f"{name} can only be used with task. decorate with @task before @{name} "
            f"or apply @{name} to an operator instance."
        )

    return decorate


def run_if(condition: Condition, skip_message: str | None = None) -> Callable[[_T], _T]:
    """Run the task only if ``condition(context)`` is true; otherwise the try is skipped with ``skip_message``.

    Put it above ``@task`` (``@task.run_if(cond)`` then ``@task``), or call it on an operator. The
    condition may return ``(bool, message)`` to give the skip message. Raises ``TypeError`` for anything
    but a ``@task`` function or an operator.
    """
    return _conditional("run_if", condition, skip_message, skip_when=False)


def skip_if(condition: Condition, skip_message: str | None = None) -> Callable[[_T], _T]:
    """Skip the task if ``condition(context)`` is true (the opposite of :func:`run_if`, same use)."""
    return _conditional("skip_if", condition, skip_message, skip_when=True)


def unique_task_id(dag: DAG | None, task_id: str, group: TaskGroup | None = None) -> str:
    """``task_id``, or ``task_id__N`` with the next free N if the DAG already has it (as Airflow does).

    Inside ``group`` the check is on the prefixed id (``group.task_id``) and the
    unprefixed id is returned (the operator adds the prefix).
    """
    full = group.child_id(task_id) if group is not None else task_id
    if dag is None or full not in dag.task_dict:
        return task_id
    core = re.sub(r"__\d+$", "", full)
    pattern = re.compile(rf"^{re.escape(core)}__(\d+)$")
    numbers = [int(m.group(1)) for t in dag.task_dict if (m := pattern.match(t))]
    label = re.sub(r"__\d+$", "", task_id)
    return f"{label}__{max(numbers, default=0) + 1}"


def infer_multiple_outputs(func: Callable[..., Any]) -> bool:
    """True if ``func``'s return annotation is a dict type (``dict``, ``dict[str, int]``, ``Dict[...]``)."""
    try:
        annotation = typing.get_type_hints(func).get("return")
    except Exception:  # noqa: BLE001 - unresolvable forward references: fall back to the raw text
        raw = inspect.signature(func).return_annotation
        return isinstance(raw, str) and re.match(r"^(dict|Dict|typing\.Dict)\b", raw) is not None
    if annotation is None:
        return False
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, dict)


class Task(Generic[P, R]):
    """A function made into a task factory; call it inside a DAG to add a task.

    ``.function`` is the plain function; ``.override(task_id=..., retries=...)``
    returns a copy with other operator arguments.
    """

    def __init__(
        self,
        function: Callable[P, R],
        operator_class: Callable[..., BaseOperator],
        multiple_outputs: bool | None,
        operator_kwargs: dict[str, Any],
    ) -> None:
        self.function = function
        self.operator_class = operator_class
        self.multiple_outputs = infer_multiple_outputs(function) if multiple_outputs is None else multiple_outputs
        self.operator_kwargs = operator_kwargs
        self.pre_execute_hook: Callable[[Context], None] | None = None
        """Run before the task's ``execute`` (``@task.run_if`` / ``@task.skip_if``); may raise ``SkipTask``."""
        self.role: tuple[str, bool] | None = None
        """``("setup", False)`` / ``("teardown", on_failure_fail_dagrun)`` for ``@setup`` / ``@teardown``."""
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "task")

    def override(self, **kwargs: Any) -> Task[P, R]:
        """A copy of this task factory with ``kwargs`` replacing operator arguments."""
        multiple = kwargs.pop("multiple_outputs", self.multiple_outputs)
        copy = Task(self.function, self.operator_class, multiple, {**self.operator_kwargs, **kwargs})
        copy.pre_execute_hook = self.pre_execute_hook
        copy.role = self.role
        return copy

    def with_pre_execute(self, hook: Callable[[Context], None]) -> Task[P, R]:
        """A copy of this task factory whose tasks also run ``hook(context)`` before ``execute``."""
        copy = self.override()
        copy.pre_execute_hook = _chain_hooks(self.pre_execute_hook, hook)
        return copy

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        """Add a task calling the function with these arguments; return its XComArg.

        Any argument may be an ``XComArg`` (another task's result, resolved when
        the task runs), so the parameters are typed ``Any`` here rather than
        the function's own: passing one task's result to another is the normal
        TaskFlow idiom and must not be a type error in a DAG author's editor.
        ``.function`` keeps the function's real signature.
        Raises ``TypeError`` if the arguments do not fit the function's signature.
        """
        try:
            inspect.signature(self.function).bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.__name__}(): {exc}") from None
        op_kwargs = dict(self.operator_kwargs)
        dag = op_kwargs.get("dag") or DagContext.current()
        group = group_of(dag, op_kwargs.get("task_group"))
        task_id = unique_task_id(group.dag if group else dag, str(op_kwargs.pop("task_id", self.__name__)), group)
        if "doc_md" not in op_kwargs and self.function.__doc__:
            op_kwargs["doc_md"] = inspect.cleandoc(self.function.__doc__)
        operator = self.operator_class(
            task_id=task_id,
            python_callable=self.function,
            op_args=list(args),
            op_kwargs=dict(kwargs),
            multiple_outputs=self.multiple_outputs,
            **op_kwargs,
        )
        if self.pre_execute_hook is not None:
            operator.pre_execute_hook = self.pre_execute_hook
        for ref in find_xcom_args([list(args), dict(kwargs)]):
            ref.operator.set_downstream(operator)
        if self.role is not None and self.role[0] == "setup":
            operator.as_setup()
        elif self.role is not None:
            operator.as_teardown(on_failure_fail_dagrun=self.role[1])
        return XComArg(operator)

    def partial(self, **kwargs: Any) -> TaskPartial[P, R]:
        """The function's arguments every mapped task instance shares: ``f.partial(y=1).expand(x=[1, 2])``.

        Raises ``TypeError`` for an argument the function does not take.
        """
        return TaskPartial(self, kwargs)

    def expand(self, **kwargs: Any) -> XComArg:
        """A mapped task: one task instance per item of ``kwargs``' values (lists, dicts, XComArgs; the
        cross product for several). Returns the XComArg of its values (a list, by map index, downstream)."""
        return TaskPartial(self, {}).expand(**kwargs)

    def expand_kwargs(self, kwargs: Any) -> XComArg:
        """A mapped task with one task instance per dict of the function's arguments (a list of dicts or an
        XComArg whose value is one)."""
        return TaskPartial(self, {}).expand_kwargs(kwargs)


KNOWN_CONTEXT_KEYS = frozenset(
    {
        "conf",
        "conn",
        "dag",
        "dag_run",
        "data_interval_end",
        "data_interval_start",
        "ds",
        "ds_nodash",
        "expanded_ti_count",
        "inlet_events",
        "inlets",
        "logical_date",
        "macros",
        "map_index",
        "outlet_events",
        "outlets",
        "params",
        "run_id",
        "task",
        "task_instance",
        "task_instance_key_str",
        "templates_dict",
        "ti",
        "triggering_asset_events",
        "try_number",
        "ts",
        "ts_nodash",
        "var",
    }
)
"""Context keys a ``@task`` function receives by name: mapping over one of them would shadow it (an error)."""


class TaskPartial(Generic[P, R]):
    """``f.partial(**kwargs)``: a ``@task`` function's shared arguments, waiting for ``expand``."""

    def __init__(self, task: Task[P, R], kwargs: dict[str, Any]) -> None:
        self.task = task
        self.kwargs = dict(kwargs)
        self._check_names("partial", self.kwargs)

    def _check_names(self, func: str, kwargs: dict[str, Any]) -> None:
        shadowed = sorted(KNOWN_CONTEXT_KEYS.intersection(kwargs)) if func != "partial" else []
        if len(shadowed) == 1:
            raise ValueError(f"cannot call {func}() on task context variable {shadowed[0]!r}")
        if shadowed:
            raise ValueError(f"cannot call {func}() on task context variables {', '.join(map(repr, shadowed))}")
        params = inspect.signature(self.task.function).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        for name in kwargs:
            if name not in params:
                raise TypeError(f"{self.task.__name__}.{func}() got an unexpected keyword argument {name!r}")

    def expand(self, **kwargs: Any) -> XComArg:
        """See :meth:`Task.expand`. Raises ``TypeError`` for no argument, an unknown one or one given to
        ``partial`` too, ``ValueError`` for a context variable or a value that cannot be mapped over."""
        if not kwargs:
            raise TypeError("no arguments to expand against")
        self._check_names("expand", kwargs)
        prevent_duplicates(self.kwargs, kwargs, fail_reason="mapping already partial")
        for name, value in kwargs.items():
            check_mappable(self.task.__name__, name, value)
        return self._expand(DictOfListsExpandInput(dict(kwargs)))

    def expand_kwargs(self, kwargs: Any) -> XComArg:
        """See :meth:`Task.expand_kwargs`. Raises ``TypeError`` for a value that is neither."""
        return self._expand(ListOfDictsExpandInput(check_expand_kwargs(kwargs)))

    def _expand(self, expand_input: ExpandInput) -> XComArg:
        task = self.task
        operator_class = task.operator_class
        if not (isinstance(operator_class, type) and issubclass(operator_class, BaseOperator)):
            raise DagDefinitionError(
                f"task {task.__name__!r}: its operator factory {operator_class!r} cannot be mapped"
            )
        op_kwargs = dict(task.operator_kwargs)
        dag = op_kwargs.get("dag") or DagContext.current()
        group = group_of(dag, op_kwargs.get("task_group"))
        task_id = unique_task_id(group.dag if group else dag, str(op_kwargs.pop("task_id", task.__name__)), group)
        if "doc_md" not in op_kwargs and task.function.__doc__:
            op_kwargs["doc_md"] = inspect.cleandoc(task.function.__doc__)
        partial = OperatorPartial(
            operator_class,
            {
                **op_kwargs,
                "task_id": task_id,
                "python_callable": task.function,
                "op_args": [],
                "op_kwargs": dict(self.kwargs),
                "multiple_outputs": task.multiple_outputs,
            },
        )
        mapped = MappedOperator.from_partial(partial, expand_input, expand_into="op_kwargs")
        mapped.pre_execute_hook = task.pre_execute_hook  # each index's operator gets it (MappedOperator.unmap)
        if task.role is not None and task.role[0] == "setup":  # a mapped @setup / @teardown, as in Airflow
            mapped.as_setup()
        elif task.role is not None:
            mapped.as_teardown(on_failure_fail_dagrun=task.role[1])
        for ref in find_xcom_args(self.kwargs):
            ref.operator.set_downstream(mapped)
        return XComArg(mapped)


class _TaskDecorator:
    """``@task`` / ``@task(...)`` for one operator class."""

    def __init__(self, operator_class: Callable[..., BaseOperator]) -> None:
        self._operator_class = operator_class

    @overload
    def __call__(self, python_callable: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def __call__(
        self, python_callable: None = None, /, *, multiple_outputs: bool | None = None, **kwargs: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def __call__(
        self,
        python_callable: Callable[P, R] | None = None,
        /,
        *,
        multiple_outputs: bool | None = None,
        **kwargs: Any,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Decorate a function (bare) or return a decorator taking operator arguments."""
        if python_callable is not None:
            if not callable(python_callable):
                raise DagDefinitionError(f"@task needs a function, got {python_callable!r}")
            return Task(python_callable, self._operator_class, multiple_outputs, kwargs)

        def decorate(func: Callable[P, R]) -> Task[P, R]:
            return Task(func, self._operator_class, multiple_outputs, kwargs)

        return decorate


class _TaskDecoratorCollection(_TaskDecorator):
    """``@task``, with its variants (``@task.branch``, ``@task.bash``, ``@task.virtualenv``, …)."""

    branch = _TaskDecorator(DecoratedBranchOperator)
    """The function returns the task_id(s) to follow (see BranchPythonOperator)."""
    short_circuit = _TaskDecorator(DecoratedShortCircuitOperator)
    """A falsy result skips downstream tasks (see ShortCircuitOperator)."""
    sensor = _TaskDecorator(DecoratedSensorOperator)
    """The function is a sensor's poke (a bool or ``PokeReturnValue``); sensor arguments: ``mode``, ``poke_interval``…"""
    bash = _TaskDecorator(DecoratedBashOperator)
    """The function returns a bash command, run as BashOperator runs it (``env``, ``cwd``, ``skip_on_exit_code``)."""
    virtualenv = _TaskDecorator(DecoratedVirtualenvOperator)
    """The function runs in a virtualenv (see PythonVirtualenvOperator: ``requirements``, ``venv_cache_path``…)."""
    external_python = _TaskDecorator(DecoratedExternalPythonOperator)
    """The function runs with the interpreter ``python=`` (see ExternalPythonOperator)."""
    branch_virtualenv = _TaskDecorator(DecoratedBranchVirtualenvOperator)
    """``@task.virtualenv`` whose function returns the task_id(s) to follow."""
    branch_external_python = _TaskDecorator(DecoratedBranchExternalPythonOperator)
    """``@task.external_python`` whose function returns the task_id(s) to follow."""
    run_if = staticmethod(run_if)
    skip_if = staticmethod(skip_if)

    @property
    def python(self) -> _TaskDecorator:
        """``@task.python``: Airflow's other spelling of ``@task`` (the same decorator)."""
        return self

    def __getattr__(self, name: str) -> NoReturn:
        """``@task.<name>`` for a decorator headrace lacks (``@task.docker``, ``@task.kubernetes`` …).

        Raises ``AttributeError`` naming it, and where it comes from in Airflow.
        """
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"@task.{name}: headrace does not support this task decorator (in Airflow it comes from a provider "
            "package); headrace has @task, .branch, .short_circuit, .sensor, .bash, .virtualenv, .external_python, "
            ".branch_virtualenv, .branch_external_python, .run_if, .skip_if"
        )


task = _TaskDecoratorCollection(DecoratedPythonOperator)
"""Make a function a task: ``@task``, ``@task(retries=3)``, ``@task.branch``, ``@task.short_circuit``,
``@task.bash``, ``@task.virtualenv``, ``@task.external_python``; ``@task.run_if(cond)`` / ``@task.skip_if(cond)``
above one of them."""


def _with_role(func: Callable[P, R] | Task[P, R], role: tuple[str, bool]) -> Task[P, R]:
    if isinstance(func, Task):
        made = func.override()
    elif callable(func):
        made = Task(func, DecoratedPythonOperator, None, {})
    else:
        raise DagDefinitionError(f"@{role[0]} needs a function or a @task, got {func!r}")
    made.role = role
    return made


@overload
def setup(python_callable: Callable[P, R] | Task[P, R], /) -> Task[P, R]: ...


@overload
def setup(python_callable: None = None, /) -> Callable[[Callable[P, R] | Task[P, R]], Task[P, R]]: ...


def setup(
    python_callable: Callable[P, R] | Task[P, R] | None = None, /
) -> Task[P, R] | Callable[[Callable[P, R] | Task[P, R]], Task[P, R]]:
    """Make a function (or a ``@task``, e.g. ``@setup`` over ``@task(retries=2)``) a setup task factory.

    Calling it in a DAG adds a task with ``is_setup`` (see :mod:`headrace.authoring.setup_teardown`).
    Raises ``DagDefinitionError`` for something that is not a function.
    """
    if python_callable is None:
        return lambda func: _with_role(func, ("setup", False))
    return _with_role(python_callable, ("setup", False))


@overload
def teardown(python_callable: Callable[P, R] | Task[P, R], /) -> Task[P, R]: ...


@overload
def teardown(
    python_callable: None = None, /, *, on_failure_fail_dagrun: bool = False
) -> Callable[[Callable[P, R] | Task[P, R]], Task[P, R]]: ...


def teardown(
    python_callable: Callable[P, R] | Task[P, R] | None = None, /, *, on_failure_fail_dagrun: bool = False
) -> Task[P, R] | Callable[[Callable[P, R] | Task[P, R]], Task[P, R]]:
    """Make a function (or a ``@task``) a teardown task factory: ``@teardown`` or ``@teardown(on_failure_fail_dagrun=True)``.

    Its tasks get ``is_teardown`` and the trigger rule ``all_done_setup_success``; a teardown's failure
    fails the DAG run only with ``on_failure_fail_dagrun=True`` (Airflow's default: False).
    """
    role = ("teardown", bool(on_failure_fail_dagrun))
    if python_callable is None:
        return lambda func: _with_role(func, role)
    return _with_role(python_callable, role)
