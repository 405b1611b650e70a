"""Mapped operators: ``Op.partial(...)`` (:class:`OperatorPartial`) and what its ``expand`` /
``expand_kwargs`` make, a :class:`MappedOperator`.

A mapped task becomes, in each DAG run, one task instance per item of what it
expands over (:mod:`~headrace.authoring.expand_input`), each with its own map
index, tries and state; the task process builds the real operator of its map
index with :meth:`MappedOperator.unmap_for`. Both names are importable from
``headrace.authoring.task`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headrace.authoring.airflow_args import AIRFLOW_OPERATOR_ARGS
from headrace.authoring.context import make_jinja_env
from headrace.authoring.dag import DagContext
from headrace.authoring.expand_input import NOT_MAPPABLE as _NOT_MAPPABLE
from headrace.authoring.expand_input import (
    DictOfListsExpandInput,
    ExpandInput,
    ListOfDictsExpandInput,
    check_expand_kwargs,
    check_mappable,
    prevent_duplicates,
    pulled_names,
)
from headrace.authoring.task import BaseOperator
from headrace.authoring.task_args import _accepted_args
from headrace.authoring.task_group import group_of
from headrace.authoring.xcom import XComArgLike
from headrace.exceptions import DagDefinitionError
from headrace.types import Context

__all__ = ["RENDERED_MAP_INDEX_MAX_CHARS", "MappedOperator", "OperatorPartial", "render_map_index"]

RENDERED_MAP_INDEX_MAX_CHARS = 250
"""Longest label kept (Airflow's ``rendered_map_index`` column); a longer one is cut."""


def _with_default_args(operator_class: type[BaseOperator], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus the DAG's (and task groups') ``default_args`` the operator accepts and ``kwargs`` lacks."""
    dag = kwargs.get("dag") or DagContext.current()
    group = group_of(dag, kwargs.get("task_group"))
    default_args = group.merged_default_args() if group is not None else dag.default_args if dag else {}
    accepted = _accepted_args(operator_class)
    return {**{k: v for k, v in default_args.items() if k in accepted}, **kwargs}


class OperatorPartial:
    """``Op.partial(...)``: an operator's shared arguments, waiting for ``expand`` or ``expand_kwargs``."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: dict[str, Any]) -> None:
        name = operator_class.__name__
        if "task_id" not in kwargs:
            raise TypeError(f"{name}.partial() missing required keyword argument 'task_id'")
        accepted = _accepted_args(operator_class)
        unknown = [k for k in kwargs if k not in accepted and k not in AIRFLOW_OPERATOR_ARGS]
        if unknown:
            raise TypeError(f"{name}.partial() got an unexpected keyword argument {unknown[0]!r}")
        self.operator_class = operator_class
        self.kwargs = dict(kwargs)
        """The arguments given to ``partial`` (a mapped argument may not repeat one)."""
        self.with_defaults = _with_default_args(operator_class, dict(kwargs))
        """``kwargs`` plus the DAG's and groups' ``default_args`` the operator takes (a mapped argument wins
        over a default)."""

    def __repr__(self) -> str:
        return f"{self.operator_class.__name__}.partial(task_id={self.kwargs['task_id']!r})"

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        """One task instance per item (the cross product for several arguments: see ``expand_input``).

        Each value is a list, a dict or an XComArg. Raises ``TypeError`` for no argument, an argument the
        operator does not take, or one given to ``partial`` too (or never mappable: ``task_id``, ``dag``,
        ``task_group``), and ``ValueError`` for a value that cannot be mapped over.
        """
        name = self.operator_class.__name__
        if not mapped_kwargs:
            raise TypeError("no arguments to expand against")
        accepted = _accepted_args(self.operator_class)
        unknown = [k for k in mapped_kwargs if k not in accepted and k not in _NOT_MAPPABLE]
        if unknown:
            raise TypeError(f"{name}.expand() got an unexpected keyword argument {unknown[0]!r}")
        prevent_duplicates(
            {**self.kwargs, **dict.fromkeys(_NOT_MAPPABLE)},
            mapped_kwargs,
            fail_reason="unmappable or already specified",
        )
        for key, value in mapped_kwargs.items():
            check_mappable(name, key, value)
        return MappedOperator.from_partial(self, DictOfListsExpandInput(dict(mapped_kwargs)))

    def expand_kwargs(self, kwargs: Sequence[dict[str, Any]] | XComArgLike) -> MappedOperator:
        """One task instance per dict of arguments: a literal list of dicts, or an XComArg whose value is one.

        Raises ``TypeError`` for anything else (naming the type found).
        """
        return MappedOperator.from_partial(self, ListOfDictsExpandInput(check_expand_kwargs(kwargs)))


class MappedOperator(BaseOperator):
    """A mapped task (``Op.partial(...).expand(...)``, ``@task`` ``.expand``): in each DAG run it becomes one
    task instance per item of what it expands over, each with its own map index, tries and state.

    The task's own arguments (retries, pool, trigger rule…) come from ``partial``. The task process builds
    the real operator for its map index with :meth:`unmap`.
    """

    def __init__(
        self,
        *,
        operator_class: type[BaseOperator],
        partial_kwargs: dict[str, Any],
        expand_input: ExpandInput,
        expand_into: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.operator_class = operator_class
        """The operator each task instance runs."""
        self.partial_kwargs = partial_kwargs
        """The arguments shared by every task instance (``task_id`` and the task's own arguments included)."""
        self.expand_input = expand_input
        self.expand_into = expand_into
        """``"op_kwargs"`` for a ``@task`` function: the expanded arguments are the function's."""
        self.template_fields = ()
        group = self.task_group
        while group is not None:
            if group.expand_input is not None:
                raise NotImplementedError(
                    f"task {self.task_id!r}: operator expansion in an expanded task group is not yet supported"
                )
            group = group.parent_group
        for ref in expand_input.references():
            ref.operator.set_downstream(self)

    @classmethod
    def from_partial(
        cls, partial: OperatorPartial, expand_input: ExpandInput, *, expand_into: str | None = None
    ) -> MappedOperator:
        """The mapped task of ``partial`` expanding over ``expand_input``."""
        base = _accepted_args(BaseOperator)
        own = {
            k: v
            for k, v in partial.with_defaults.items()
            if k in base or (k in AIRFLOW_OPERATOR_ARGS and k not in _accepted_args(partial.operator_class))
        }
        return cls(
            operator_class=partial.operator_class,
            partial_kwargs=partial.with_defaults,
            expand_input=expand_input,
            expand_into=expand_into,
            **own,
        )

    @property
    def operator_name(self) -> str:
        """The name of the operator each task instance runs (``BashOperator``, ``@task``)."""
        return str(getattr(self.operator_class, "decorator_name", None) or self.operator_class.__name__)

    def execute(self, context: Context) -> Any:
        """Never called: each expanded task instance runs the operator :meth:`unmap` builds."""
        raise RuntimeError(f"task {self.task_id!r} is mapped: its task instances run the unmapped operator")

    def unmap_for(self, context: Context) -> BaseOperator:
        """The operator of the task instance at ``context["map_index"]``, its arguments resolved (XComArgs
        pulled through ``context["ti"]``). Raises ``IndexError`` / ``TypeError`` for a map index or value that
        does not fit what the task expands over."""
        assert self.expand_input is not None
        resolved = self.expand_input.resolve(context, int(context.get("map_index", -1)))
        operator = self.unmap(resolved)
        operator.not_templates = {id(resolved[k]) for k in pulled_names(self.expand_input, resolved)}
        return operator

    def unmap_for_callbacks(self, context: Context) -> BaseOperator:
        """The operator of the task instance at ``context["map_index"]`` for callbacks run after its try ended
        outside the task process (XCom is not available there): its arguments resolved when the input is all
        literal (or ``context["ti"]`` can still pull them); otherwise its ``partial`` arguments with each mapped
        argument ``None``. Returns this mapped operator itself when the operator refuses those arguments."""
        try:
            return self.unmap_for(context)
        except Exception:  # noqa: BLE001 - an XCom it cannot pull, a value that does not fit: fall back below
            pass
        names = list(self.expand_input.value) if isinstance(self.expand_input, DictOfListsExpandInput) else []
        try:
            operator = self.unmap(dict.fromkeys(names))
        except Exception:  # noqa: BLE001 - the operator's own checks refuse None: the mapped task stands in
            return self
        operator.not_templates = set()
        return operator

    def unmap(self, mapped_kwargs: dict[str, Any]) -> BaseOperator:
        """The operator of one task instance: ``partial`` arguments plus ``mapped_kwargs``, outside any DAG
        context (its ``dag``, group and relatives are this task's)."""
        kwargs = {k: v for k, v in self.partial_kwargs.items() if k not in ("dag", "task_group", "task_id")}
        if self.expand_into is not None:
            kwargs[self.expand_into] = {**dict(kwargs.get(self.expand_into) or {}), **mapped_kwargs}
        else:
            kwargs.update(mapped_kwargs)
        operator = self.operator_class(task_id=self.task_id, **kwargs)
        operator.dag = self.dag
        operator.task_group = self.task_group
        operator.pre_execute_hook = self.pre_execute_hook  # @task.run_if / skip_if given to the mapped task
        operator.params = self.params  # merged with the DAG's and groups' where the mapped task was made
        operator.is_setup, operator.is_teardown = self.is_setup, self.is_teardown
        operator.upstream_task_ids = set(self.upstream_task_ids)
        operator.downstream_task_ids = set(self.downstream_task_ids)
        return operator


def render_map_index(context: Context) -> str | None:
    """The task instance's label: ``context["map_index_template"]`` rendered with ``context`` (Airflow's
    ``rendered_map_index``), as text cut to :data:`RENDERED_MAP_INDEX_MAX_CHARS`; None without a template.

    The template is the task's ``map_index_template`` unless the task's code put another in the context
    (``get_current_context()["map_index_template"] = f"file {name}"``); it sees everything the task added
    to the context. Renders in the DAG's Jinja environment (as text, never native). Raises
    ``DagDefinitionError`` naming the task for a broken template or an undefined name.
    """
    template = context.get("map_index_template")
    if template is None:
        return None
    import jinja2  # here, not at the top: importing the authoring API renders nothing

    dag = context.get("dag")
    try:
        text = make_jinja_env(dag, native=False).from_string(str(template)).render(context)
    except jinja2.TemplateError as exc:
        task = context.get("task")
        raise DagDefinitionError(
            f"cannot render map_index_template of task {getattr(task, 'task_id', '?')!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return str(text)[:RENDERED_MAP_INDEX_MAX_CHARS]
