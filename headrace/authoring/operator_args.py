"""How an operator's ``__init__`` gets its arguments: the DAG's (and task groups') ``default_args``, the merged
``params``, and the Airflow operator arguments headrace ignores (noted for the DAG warnings)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from headrace.authoring.airflow_args import AIRFLOW_OPERATOR_ARGS
from headrace.authoring.dag import DagContext
from headrace.authoring.params import task_params
from headrace.authoring.task_args import _accepted_args
from headrace.authoring.task_group import group_of
from headrace.authoring.xcom import find_xcom_args
from headrace.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from headrace.authoring.task import BaseOperator

_F = TypeVar("_F", bound=Callable[..., None])


def apply_default_args(init: _F) -> _F:
    """Wrap an operator ``__init__``: fill kwargs from the DAG's default_args, set ``params`` (the DAG's, the
    groups' ``default_args['params']``, the task's own), drop (and note) the Airflow arguments it does not
    accept, reject unknown kwargs (``DagDefinitionError``, as for an invalid param default)."""

    @functools.wraps(init)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        if self.__dict__.get("_init_started"):
            init(self, *args, **kwargs)
            return
        self.__dict__["_init_started"] = True
        accepted = _accepted_args(type(self))
        dag = kwargs.get("dag") or DagContext.current()
        group = group_of(dag, kwargs.get("task_group"))
        if group is not None:
            dag = group.dag
        default_args = group.merged_default_args() if group is not None else dag.default_args if dag else {}
        own, group_params = kwargs.pop("params", None), default_args.get("params")
        self.__dict__["params"] = task_params(
            dag.params if dag else None,
            group_params,
            own,
            task_id=kwargs.get("task_id", "?"),
            fileloc=dag.fileloc if dag else None,
            lineno=dag.lineno if dag else None,
        )
        for key, value in default_args.items():
            if key in accepted and key not in kwargs:
                kwargs[key] = value
        ignored = sorted((kwargs.keys() & AIRFLOW_OPERATOR_ARGS) - accepted)
        self.__dict__["ignored_arguments"] = tuple(ignored)
        for key in ignored:
            del kwargs[key]
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise DagDefinitionError(
                f"invalid arguments were passed to {type(self).__name__} "
                f"(task_id: {kwargs.get('task_id')!r}): {', '.join(unknown)}",
                fileloc=dag.fileloc if dag else None,
                lineno=dag.lineno if dag else None,
            )
        init(self, *args, **kwargs)
        _depend_on_references(self)

    return wrapper  # type: ignore[return-value]


def _depend_on_references(task: BaseOperator) -> None:
    """Make ``task`` downstream of every task whose XCom its template fields reference (``op_kwargs={"x":
    other.output}``, ``bash_command=make()``), as Airflow does; the values are pulled when the fields render."""
    for field in type(task).template_fields:
        for ref in find_xcom_args(getattr(task, field, None)):
            if ref.operator is not task:
                ref.operator.set_downstream(task)


__all__ = ["apply_default_args"]
