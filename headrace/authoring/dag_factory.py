"""``@dag``: a function made into a DAG factory, whose parameters become the DAG's params.

``headrace.authoring.decorators`` (and ``headrace``) re-export :func:`dag`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, overload

from headrace.authoring.dag import DAG, caller_location
from headrace.authoring.params import ParamsDict
from headrace.authoring.xcom import DagParam
from headrace.exceptions import DagDefinitionError, ParamValidationError

__all__ = ["DagFactory", "dag"]

P = ParamSpec("P")


class DagFactory(Generic[P]):
    """A function made into a DAG factory by ``@dag``; calling it builds and returns the DAG."""

    def __init__(self, function: Callable[P, Any], dag_kwargs: dict[str, Any]) -> None:
        self.function = function
        self.dag_kwargs = dag_kwargs
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "dag")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> DAG:
        """Build the DAG: the function's parameters (defaults, overridden by these arguments) become params."""
        signature = inspect.signature(self.function)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        dag_kwargs = dict(self.dag_kwargs)
        dag_id = dag_kwargs.pop("dag_id", None) or self.__name__
        # Airflow's ParamsDict rule: an argument's value over a declared Param keeps the Param's schema
        # (and must satisfy it); a Param as the argument's default replaces it.
        params = ParamsDict(dag_kwargs.pop("params", None))
        if "doc_md" not in dag_kwargs and self.function.__doc__:
            dag_kwargs["doc_md"] = inspect.cleandoc(self.function.__doc__)
        fileloc, lineno, _ = caller_location()
        try:
            for name, value in bound.arguments.items():
                params[name] = value
        except ParamValidationError as exc:
            raise DagDefinitionError(f"DAG {dag_id!r}: {exc.message}", fileloc=fileloc, lineno=lineno) from None
        new_dag = DAG(dag_id, params=params, **dag_kwargs)
        build: Callable[..., Any] = self.function  # receives DagParam references, not the values
        with new_dag:
            build(**{name: DagParam(name, params.dump()[name]) for name in bound.arguments})
        return new_dag


@overload
def dag(function: Callable[P, Any], /) -> DagFactory[P]: ...


@overload
def dag(dag_id: str | None = None, /, **dag_kwargs: Any) -> Callable[[Callable[P, Any]], DagFactory[P]]: ...


def dag(
    function: Callable[P, Any] | str | None = None, /, **dag_kwargs: Any
) -> DagFactory[P] | Callable[[Callable[P, Any]], DagFactory[P]]:
    """Make a function a DAG factory: ``@dag`` or ``@dag(schedule=..., start_date=...)``.

    ``dag_kwargs`` are ``DAG``'s arguments; ``dag_id`` defaults to the function's
    name (a first positional str is taken as the dag_id). Calling the result
    builds the DAG and returns it.
    """
    if callable(function):
        return DagFactory(function, dag_kwargs)
    if isinstance(function, str):
        dag_kwargs["dag_id"] = function

    def decorate(func: Callable[P, Any]) -> DagFactory[P]:
        return DagFactory(func, dag_kwargs)

    return decorate
