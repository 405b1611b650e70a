"""Task groups: ``TaskGroup`` and ``@task_group``, a naming and display concept (Airflow's).

::

    with DAG("etl") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("extract", tooltip="pull the sources", default_args={"retries": 2}) as extract:
            a = EmptyOperator(task_id="a")  # task_id "extract.a"
            with TaskGroup("inner"):
                EmptyOperator(task_id="b")  # task_id "extract.inner.b"
        start >> extract  # start >> every root of the group

A task created inside a group gets the id ``<group_id>.<task_id>`` (unless the
group has ``prefix_group_id=False``), and the group's ``default_args`` over
the outer groups' over the DAG's. ``>>`` / ``<<`` with a group mean its roots
(tasks without an upstream task inside the group) on the downstream side and
its leaves (without a downstream task inside the group) on the upstream side,
as in Airflow. The scheduler knows nothing of groups: they are stored with
the serialized DAG for the UI.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from headrace.authoring.dag import DAG, DagContext, caller_location, validate_id
from headrace.authoring.expand_input import (
    DictOfListsExpandInput,
    ExpandInput,
    ListOfDictsExpandInput,
    check_mappable,
    prevent_duplicates,
)
from headrace.authoring.setup_teardown import group_leaves
from headrace.authoring.xcom import MappedArgument
from headrace.exceptions import DagDefinitionError, DuplicateTaskIdError

if TYPE_CHECKING:
    from headrace.authoring.edges import Label
    from headrace.authoring.task import BaseOperator

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_UI_COLOR = "CornflowerBlue"
"""A group's background in the graph when ``ui_color`` is not given (Airflow's)."""


class TaskGroupContext:
    """The stack of task groups entered with ``with``; the last is the current group."""

    _stack: list[TaskGroup] = []

    @classmethod
    def push(cls, group: TaskGroup) -> None:
        """Make ``group`` the current group."""
        cls._stack.append(group)

    @classmethod
    def pop(cls) -> TaskGroup | None:
        """Leave the current group and return it (None if the stack was empty)."""
        return cls._stack.pop() if cls._stack else None

    @classmethod
    def current(cls, dag: DAG | None = None) -> TaskGroup | None:
        """The innermost group being defined (for ``dag``, if given: a group of another DAG is not current)."""
        for group in reversed(cls._stack):
            if dag is None or group.dag is dag:
                return group
        return None


class TaskGroup:
    """A named group of tasks (and groups) in one DAG; ``with TaskGroup("g"):`` puts new tasks in it.

    ``group_id``: letters, digits, ``-``, ``_`` and ``.`` (prefixed by the
    parent's id when the parent prefixes). ``prefix_group_id``: the ids of the
    tasks and groups inside get ``"<group_id>."`` in front. ``tooltip`` and
    ``ui_color`` / ``ui_fgcolor`` are shown in the graph. ``default_args``
    apply to the tasks inside, over the outer groups' and the DAG's.
    ``parent_group`` defaults to the current group; ``dag`` to the parent's
    DAG or the current DAG. ``add_suffix_on_collision`` (used by
    ``@task_group``) makes a taken id ``<id>__1``, ``<id>__2`` … instead of
    raising.

    Raises ``DagDefinitionError`` (no DAG, bad id) and ``DuplicateTaskIdError``
    when the DAG already has a group or task with this id, both naming the
    file and line of the group.
    """

    dag: DAG
    """The DAG the group is in."""
    group_id: str
    """The full id: ``outer.inner`` when the parents prefix."""
    label: str
    """The id given, without the parents' prefix (Airflow's ``_group_id``)."""
    parent_group: TaskGroup | None
    """The enclosing group, None at the DAG's top level."""
    expand_input: ExpandInput | None = None
    """What a mapped task group (``my_group.expand(...)``) expands over; None for a plain group."""

    def __init__(
        self,
        group_id: str,
        *,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        default_args: dict[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = DEFAULT_UI_COLOR,
        ui_fgcolor: str = "#000",
        add_suffix_on_collision: bool = False,
    ) -> None:
        self.fileloc, self.lineno, _ = caller_location()
        where: dict[str, Any] = {"fileloc": self.fileloc, "lineno": self.lineno}
        dag = dag or (parent_group.dag if parent_group is not None else None) or DagContext.current()
        if dag is None:
            raise DagDefinitionError(f"TaskGroup {group_id!r} must be created inside a DAG (or given dag=)", **where)
        if parent_group is None:
            parent_group = TaskGroupContext.current(dag)
        if parent_group is not None and parent_group.dag is not dag:
            raise DagDefinitionError(
                f"TaskGroup {group_id!r} is in DAG {dag.dag_id!r} but its parent group "
                f"{parent_group.group_id!r} is in DAG {parent_group.dag.dag_id!r}",
                **where,
            )
        if default_args is not None and not isinstance(default_args, dict):
            raise DagDefinitionError(f"TaskGroup {group_id!r}: default_args must be a dict, got {default_args!r}")
        self.dag = dag
        self.parent_group = parent_group
        self.prefix_group_id = bool(prefix_group_id)
        self.tooltip = tooltip or ""
        self.ui_color = ui_color
        self.ui_fgcolor = ui_fgcolor
        self.default_args: dict[str, Any] = dict(default_args or {})
        self.children: dict[str, BaseOperator | TaskGroup] = {}
        """Direct members by full id (tasks and groups), in the order they were added."""
        label = validate_id("group_id", group_id, **where)
        full = parent_group.child_id(label) if parent_group is not None else label
        if full in dag.task_group_dict or full in dag.task_dict:
            if not add_suffix_on_collision:
                what = "group_id" if full in dag.task_group_dict else "task_id"
                raise DuplicateTaskIdError(
                    f"group_id {full!r} has already been added to DAG {dag.dag_id!r} (as a {what})", **where
                )
            label = _free_label(dag, parent_group, label)
            full = parent_group.child_id(label) if parent_group is not None else label
        self.label = label
        self.group_id = full
        dag.task_group_dict[full] = self
        if parent_group is not None:
            parent_group.children[full] = self

    def __repr__(self) -> str:
        return f"<TaskGroup: {self.group_id}>"

    # --- context manager -----------------------------------------------------

    def __enter__(self) -> TaskGroup:
        TaskGroupContext.push(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        TaskGroupContext.pop()

    # --- members -------------------------------------------------------------

    def child_id(self, label: str) -> str:
        """The full id of a member called ``label``: ``"<group_id>.<label>"``, or ``label`` without prefixing."""
        return f"{self.group_id}.{label}" if self.prefix_group_id else label

    def add(self, task: BaseOperator) -> None:
        """Record ``task`` (already in ``self.dag``) as a direct member."""
        self.children[task.task_id] = task

    def merged_default_args(self) -> dict[str, Any]:
        """The DAG's ``default_args``, then each group's from the outermost to this one (inner wins)."""
        chain: list[TaskGroup] = []
        group: TaskGroup | None = self
        while group is not None:
            chain.append(group)
            group = group.parent_group
        merged = dict(self.dag.default_args)
        for g in reversed(chain):
            merged.update(g.default_args)
        return merged

    def iter_tasks(self) -> list[BaseOperator]:
        """Every task in this group and its nested groups, in the order they were added."""
        out: list[BaseOperator] = []
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                out.extend(child.iter_tasks())
            else:
                out.append(child)
        return out

    @property
    def roots(self) -> list[BaseOperator]:
        """Tasks of the group (nested ones too) with no upstream task inside the group."""
        tasks = self.iter_tasks()
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.upstream_task_ids & ids)]

    @property
    def leaves(self) -> list[BaseOperator]:
        """Tasks of the group (nested ones too) with no downstream task inside the group; a teardown
        leaf is replaced by the work tasks before it (Airflow's rule: see
        :func:`~headrace.authoring.setup_teardown.group_leaves`)."""
        return group_leaves(self.iter_tasks())

    def _members(self, side: str) -> list[BaseOperator]:
        found = self.roots if side == "roots" else self.leaves
        if not found:
            raise DagDefinitionError(
                f"task group {self.group_id!r} has no tasks, so nothing can depend on it",
                fileloc=self.fileloc,
                lineno=self.lineno,
            )
        return found

    # --- dependencies --------------------------------------------------------

    def set_downstream(self, other: object, edge_modifier: Label | None = None) -> None:
        """Make ``other`` (task, group, XComArg or a list of them) run after every leaf of this group."""
        for leaf in self._members("leaves"):
            leaf.set_downstream(other, edge_modifier=edge_modifier)

    def set_upstream(self, other: object, edge_modifier: Label | None = None) -> None:
        """Make ``other`` (task, group, XComArg or a list of them) run before every root of this group."""
        for root in self._members("roots"):
            root.set_upstream(other, edge_modifier=edge_modifier)

    def __rshift__(self, other: Any) -> Any:
        if _is_label(other):
            other.add_upstream(self)
            return other
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        if _is_label(other):
            other.add_downstream(self)
            return other
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> TaskGroup:
        """``[a, b] >> group``."""
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> TaskGroup:
        """``[a, b] << group``."""
        self.set_downstream(other)
        return self


def _is_label(value: object) -> bool:
    return hasattr(value, "add_upstream") and hasattr(value, "label")


def _free_label(dag: DAG, parent: TaskGroup | None, label: str) -> str:
    """``label__N`` with the next N whose full id is free in ``dag`` (as Airflow's ``add_suffix_on_collision``)."""
    core = re.sub(r"__\d+$", "", label)
    n = 1
    while True:
        candidate = f"{core}__{n}"
        full = parent.child_id(candidate) if parent is not None else candidate
        if full not in dag.task_group_dict and full not in dag.task_dict:
            return candidate
        n += 1


def group_of(dag: DAG | None, explicit: TaskGroup | None) -> TaskGroup | None:
    """The group a new task of ``dag`` joins: ``explicit`` if given, else the current group of that DAG."""
    if explicit is not None:
        return explicit
    return TaskGroupContext.current(dag) if dag is not None else None


class TaskGroupFactory(Generic[P, R]):
    """A function made into a task group factory by ``@task_group``.

    Calling it (inside a DAG) creates a ``TaskGroup`` named after the function
    (``group_id__1``… when called again), runs the function inside it and
    returns what the function returned, or the group if it returned None, so
    ``start >> my_group() >> end`` works; an XComArg returned by the function
    can be passed to the next task as in Airflow. The function's docstring is
    the group's tooltip unless ``tooltip`` is given. ``.override(**kwargs)``
    returns a copy with other ``TaskGroup`` arguments.
    """

    def __init__(self, function: Callable[P, R], group_kwargs: dict[str, Any]) -> None:
        unknown = sorted(set(group_kwargs) - _GROUP_ARGS)
        if unknown:
            raise DagDefinitionError(
                f"@task_group got arguments TaskGroup does not take: {', '.join(unknown)} "
                f"(it takes {', '.join(sorted(_GROUP_ARGS))})"
            )
        self.function = function
        self.group_kwargs = group_kwargs
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "task_group")
        functools.update_wrapper(self, function)

    def override(self, **kwargs: Any) -> TaskGroupFactory[P, R]:
        """A copy of this factory with ``kwargs`` replacing ``TaskGroup`` arguments (``group_id``, ``tooltip``…)."""
        return TaskGroupFactory(self.function, {**self.group_kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> R | TaskGroup:
        """Create the group, build its tasks with the function; return the function's result or the group.

        The arguments are typed ``Any``, as a ``@task``'s are: passing a task's result (an ``XComArg``) into a
        group is the TaskFlow idiom and must not be a type error in a DAG author's editor.
        Raises ``TypeError`` if the arguments do not fit the function's signature.
        """
        try:
            inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.__name__}(): {exc}") from None
        group_kwargs = dict(self.group_kwargs)
        group_id = str(group_kwargs.pop("group_id", None) or self.__name__)
        if not group_kwargs.get("tooltip") and self.function.__doc__:
            group_kwargs["tooltip"] = inspect.cleandoc(self.function.__doc__)
        group_kwargs.setdefault("add_suffix_on_collision", True)
        with TaskGroup(group_id, **group_kwargs) as group:
            result = self.function(*args, **kwargs)
        return group if result is None else result

    def partial(self, **kwargs: Any) -> TaskGroupPartial[P, R]:
        """The function's arguments every mapped group instance shares: ``my_group.partial(y=1).expand(x=[…])``."""
        return TaskGroupPartial(self, kwargs)

    def expand(self, **kwargs: Any) -> R | TaskGroup:
        """A mapped task group: its tasks run once per item (the cross product for several arguments), each
        task instance with the arguments of its map index. See :meth:`TaskGroupPartial.expand`."""
        return TaskGroupPartial(self, {}).expand(**kwargs)

    def expand_kwargs(self, kwargs: Any) -> R | TaskGroup:
        """A mapped task group with one instance per dict of the function's arguments (a list of dicts or an
        XComArg whose value is one)."""
        return TaskGroupPartial(self, {}).expand_kwargs(kwargs)

    def _mapped(self, given: dict[str, Any], expand_input: ExpandInput, names: list[str]) -> R | TaskGroup:
        group_kwargs = dict(self.group_kwargs)
        group_id = str(group_kwargs.pop("group_id", None) or self.__name__)
        if not group_kwargs.get("tooltip") and self.function.__doc__:
            group_kwargs["tooltip"] = inspect.cleandoc(self.function.__doc__)
        group_kwargs.setdefault("add_suffix_on_collision", True)
        with TaskGroup(group_id, **group_kwargs) as group:
            if any(g.expand_input is not None for g in _chain(group.parent_group)):
                raise NotImplementedError(
                    f"task group {group.group_id!r}: expanding a task group in an expanded task group "
                    "is not yet supported"
                )
            group.expand_input = expand_input
            arguments = {**given, **{name: MappedArgument(name, expand_input) for name in names}}
            build: Callable[..., R] = self.function  # receives MappedArguments for the expanded names
            result = build(**arguments)
        return group if result is None else result


def _chain(group: TaskGroup | None) -> list[TaskGroup]:
    out: list[TaskGroup] = []
    while group is not None:
        out.append(group)
        group = group.parent_group
    return out


class TaskGroupPartial(Generic[P, R]):
    """``my_group.partial(**kwargs)``: the function's shared arguments, waiting for ``expand``."""

    def __init__(self, factory: TaskGroupFactory[P, R], kwargs: dict[str, Any]) -> None:
        self.factory = factory
        self.kwargs = dict(kwargs)
        self._check_names("partial", self.kwargs)

    def _check_names(self, func: str, kwargs: dict[str, Any]) -> None:
        params = inspect.signature(self.factory.function).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        for name in kwargs:
            if name not in params:
                raise TypeError(f"{self.factory.__name__}.{func}() got an unexpected keyword argument {name!r}")

    def expand(self, **kwargs: Any) -> R | TaskGroup:
        """Map the group over ``kwargs`` (lists, dicts or XComArgs). Raises ``TypeError`` for no argument,
        an unknown one or one given to ``partial`` too, ``ValueError`` for a value that cannot be mapped."""
        if not kwargs:
            raise TypeError("no arguments to expand against")
        self._check_names("expand", kwargs)
        prevent_duplicates(self.kwargs, kwargs, fail_reason="mapping already partial")
        for name, value in kwargs.items():
            check_mappable(self.factory.__name__, name, value)
        return self.factory._mapped(self.kwargs, DictOfListsExpandInput(dict(kwargs)), list(kwargs))

    def expand_kwargs(self, kwargs: Any) -> R | TaskGroup:
        """Map the group over a list of dicts of the function's arguments (or an XComArg whose value is one).

        The function's parameters not given to ``partial`` are read from each dict.
        """
        if not isinstance(kwargs, (list, tuple)) and not hasattr(kwargs, "references"):
            raise TypeError(f"expected XComArg or list[dict], not {type(kwargs).__name__}")
        names = [n for n in inspect.signature(self.factory.function).parameters if n not in self.kwargs]
        return self.factory._mapped(
            self.kwargs, ListOfDictsExpandInput(list(kwargs) if isinstance(kwargs, tuple) else kwargs), names
        )


_GROUP_ARGS = frozenset(
    {
        "group_id",
        "prefix_group_id",
        "parent_group",
        "dag",
        "default_args",
        "tooltip",
        "ui_color",
        "ui_fgcolor",
        "add_suffix_on_collision",
    }
)
"""The keyword arguments ``@task_group(...)`` passes on to ``TaskGroup``."""


@overload
def task_group(python_callable: Callable[P, R], /) -> TaskGroupFactory[P, R]: ...


@overload
def task_group(
    group_id: str | None = None, /, **group_kwargs: Any
) -> Callable[[Callable[P, R]], TaskGroupFactory[P, R]]: ...


def task_group(
    python_callable: Callable[P, R] | str | None = None, /, **group_kwargs: Any
) -> TaskGroupFactory[P, R] | Callable[[Callable[P, R]], TaskGroupFactory[P, R]]:
    """Make a function that builds tasks a task group factory: ``@task_group`` or ``@task_group(tooltip=...)``.

    ``group_kwargs`` are ``TaskGroup``'s arguments (a first positional str is
    the ``group_id``; the default is the function's name). Raises
    ``DagDefinitionError`` for an argument ``TaskGroup`` does not take.
    """
    if callable(python_callable):
        return TaskGroupFactory(python_callable, group_kwargs)
    if isinstance(python_callable, str):
        group_kwargs["group_id"] = python_callable

    def decorate(func: Callable[P, R]) -> TaskGroupFactory[P, R]:
        return TaskGroupFactory(func, group_kwargs)

    return decorate


__all__ = [
    "DEFAULT_UI_COLOR",
    "TaskGroup",
    "TaskGroupContext",
    "TaskGroupFactory",
    "TaskGroupPartial",
    "group_of",
    "task_group",
]
