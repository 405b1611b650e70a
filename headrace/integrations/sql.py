"""``SQLExecuteQueryOperator``: run SQL on a connection's database and push the rows as XCom (Airflow's).

The hook comes from the connection's type (:meth:`BaseHook.get_hook`:
``postgres`` → :class:`PostgresHook`, ``mysql``/``mariadb`` → :class:`MySqlHook`,
``sqlite`` → :class:`SqliteHook`, any type with a ``sqlalchemy_scheme`` extra →
:class:`DbApiHook`), and :meth:`DbApiHook.run` does the work with Airflow's
rules for ``autocommit``, ``split_statements`` and ``return_last``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headrace.authoring.task import BaseOperator
from headrace.exceptions import DagDefinitionError, FailTask, HeadraceError
from headrace.hooks.base import BaseHook
from headrace.hooks.handlers import fetch_all_handler, return_single_query_results
from headrace.types import Context

if TYPE_CHECKING:
    import jinja2

    from headrace.hooks.sql import DbApiHook

OutputProcessor = Callable[[list[Any], list[Sequence[Sequence[Any]] | None]], Any]
"""``output_processor(results, descriptions)``: one result and one cursor description per statement."""


def default_output_processor(results: list[Any], descriptions: list[Sequence[Sequence[Any]] | None]) -> list[Any]:
    """The results as they are."""
    return results


class BaseSQLOperator(BaseOperator):
    """The base of SQL operators: ``conn_id``, ``database`` (overrides the connection's) and ``hook_params``
    (keyword arguments of the hook's constructor, e.g. ``{"log_sql": False}``).

    ``retry_on_failure=False`` makes a check failure fail the task without
    retries (for check operators). Raises ``DagDefinitionError`` when ``conn_id``
    is missing.
    """

    template_fields: Sequence[str] = ("conn_id", "database", "hook_params")

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        database: str | None = None,
        hook_params: dict[str, Any] | None = None,
        retry_on_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not conn_id:
            raise DagDefinitionError(
                f"{type(self).__name__} {self.task_id!r}: conn_id is required (the connection of the database)",
                fileloc=self.dag.fileloc if self.dag else None,
            )
        self.conn_id = conn_id
        self.database = database
        self.hook_params = dict(hook_params or {})
        self.retry_on_failure = retry_on_failure

    def get_db_hook(self) -> DbApiHook:
        """The SQL hook for ``conn_id`` (``database`` applied). Raises ``HeadraceError`` when the connection's
        type has no SQL hook."""
        try:
            hook = BaseHook.get_hook(self.conn_id, hook_params=self.hook_params)
        except ValueError as exc:
            raise HeadraceError(f"{type(self).__name__} {self.task_id!r}: {exc}") from None
        from headrace.hooks.sql import DbApiHook  # here: parsing a DAG file that uses the operator loads no SQLAlchemy

        if not isinstance(hook, DbApiHook):
            raise HeadraceError(
                f"{type(self).__name__} {self.task_id!r}: connection {self.conn_id!r} has a "
                f"{type(hook).__name__}, which is not a SQL hook"
            )
        if self.database:
            if hasattr(hook, "database"):
                hook.database = self.database
            else:
                hook.schema = self.database
        return hook

    def _raise_exception(self, message: str) -> None:
        if self.retry_on_failure:
            raise HeadraceError(message)
        raise FailTask(message)


class SQLExecuteQueryOperator(BaseSQLOperator):
    """Run ``sql`` (a statement, a list of them, or a ``.sql`` template file) on ``conn_id``'s database.

    ``parameters`` go to the driver with each statement (its placeholder
    style). ``autocommit`` commits each statement on its own; otherwise all run
    in one transaction. ``split_statements`` splits a string into statements
    (default: the hook's, False). ``handler(cursor)`` (default
    :func:`fetch_all_handler`: rows as lists) makes each statement's result;
    the task returns, and pushes as XCom, the last statement's result when
    ``sql`` is a string and ``return_last`` (or it is not split), else the list
    of every statement's result — after ``output_processor(results,
    descriptions)``. ``show_return_value_in_logs`` prints the output in the
    try's log. Templated: ``sql``, ``parameters``, ``conn_id``, ``database``,
    ``hook_params``; ``.sql`` and ``.json`` values are template files (a
    ``.json`` file's text becomes ``parameters`` as a Python literal).
    ``do_xcom_push=False`` runs the SQL without fetching rows (unless
    ``requires_result_fetch``) and pushes nothing, as in Airflow.
    """

    template_fields: Sequence[str] = ("sql", "parameters", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".sql", ".json")
    ui_color = "#cdaaed"

    def __init__(
        self,
        *,
        sql: str | list[str],
        autocommit: bool = False,
        parameters: Mapping[str, Any] | Iterable[Any] | None = None,
        handler: Callable[[Any], Any] = fetch_all_handler,
        output_processor: OutputProcessor | None = None,
        conn_id: str | None = None,
        database: str | None = None,
        split_statements: bool | None = None,
        return_last: bool = True,
        show_return_value_in_logs: bool = False,
        requires_result_fetch: bool = False,
        do_xcom_push: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.do_xcom_push = do_xcom_push
        if not isinstance(sql, (str, list, tuple)) or not sql:
            raise DagDefinitionError(
                f"SQLExecuteQueryOperator {self.task_id!r}: sql must be a non-empty string or list of strings, "
                f"got {sql!r}",
                fileloc=self.dag.fileloc if self.dag else None,
            )
        self.sql: str | list[str] = sql if isinstance(sql, str) else list(sql)
        self.autocommit = autocommit
        self.parameters = parameters
        self.handler = handler
        self.output_processor: OutputProcessor = output_processor or default_output_processor
        self.split_statements = split_statements
        self.return_last = return_last
        self.show_return_value_in_logs = show_return_value_in_logs
        self.requires_result_fetch = requires_result_fetch

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render the template fields; ``parameters`` rendered to a string (a ``.json`` file) is read as a
        Python literal. Raises ``DagDefinitionError`` naming the task when it is not one."""
        super().render_template_fields(context, jinja_env)
        if isinstance(self.parameters, str):
            try:
                self.parameters = ast.literal_eval(self.parameters)
            except (ValueError, SyntaxError) as exc:
                raise DagDefinitionError(
                    f"SQLExecuteQueryOperator {self.task_id!r}: parameters is not a literal: {exc}"
                ) from None

    def _process_output(self, results: list[Any], descriptions: list[Sequence[Sequence[Any]] | None]) -> Any:
        if self.show_return_value_in_logs:
            print(f"Operator output is: {results!r}", flush=True)
        return self.output_processor(results, descriptions)

    def execute(self, context: Context) -> Any:
        """Run the SQL through the hook; return the output (see the class docstring)."""
        print(f"Executing: {self.sql}", flush=True)
        hook = self.get_db_hook()
        extra: dict[str, Any] = {}
        if self.split_statements is not None:
            extra["split_statements"] = self.split_statements
        output = hook.run(
            sql=self.sql,
            autocommit=self.autocommit,
            parameters=self.parameters,
            handler=self.handler if self.do_xcom_push or self.requires_result_fetch else None,
            return_last=self.return_last,
            **extra,
        )
        if not self.do_xcom_push:
            return None
        if return_single_query_results(self.sql, self.return_last, self.split_statements):
            processed = self._process_output([output], hook.descriptions)
            return processed[-1] if isinstance(processed, list) and processed else processed
        return self._process_output(output, hook.descriptions)


__all__ = ["BaseSQLOperator", "SQLExecuteQueryOperator", "default_output_processor"]
