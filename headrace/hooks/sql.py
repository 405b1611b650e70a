"""SQL hooks: Airflow's ``DbApiHook`` surface over any database SQLAlchemy reaches.

A hook turns its connection into a SQLAlchemy URL (:mod:`headrace.hooks.urls`)
and talks to the database through the driver's own DB-API connection, as
Airflow's hooks do: SQL text and ``parameters`` go to the driver unchanged, so
placeholders are the driver's (``%s`` / ``%(name)s`` for psycopg and PyMySQL,
``?`` / ``:name`` for SQLite).

:meth:`DbApiHook.run` keeps Airflow's rules: without ``autocommit`` the
statements run in one transaction committed at the end (an error rolls back
all of them); with it each statement commits on its own. Its return value is
the handler's result of the single statement (``sql`` a string and
``return_last`` or not ``split_statements``), else a list with one result per
statement. :func:`~headrace.hooks.handlers.fetch_all_handler` gives a list of tuples (None for a
statement that returns no rows), :func:`fetch_one_handler` one tuple or None.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

import sqlparse
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from headrace.authoring.secrets import Connection
from headrace.hooks.base import BaseHook
from headrace.hooks.handlers import fetch_all_handler, fetch_one_handler, return_single_query_results
from headrace.hooks.urls import ignored_extras, sqlalchemy_url

if TYPE_CHECKING:
    import pandas

Parameters = Iterable[Any] | Mapping[str, Any] | None
"""Query parameters in the driver's style: a sequence for positional placeholders, a mapping for named ones."""


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, size) if size > 0 else it):
        yield chunk


class DbApiHook(BaseHook):
    """A SQL database through its connection (any ``conn_type`` with a SQL driver, see :mod:`headrace.hooks.urls`).

    ``DbApiHook("my_db")`` or ``DbApiHook(conn_id="my_db")``; ``schema``
    overrides the connection's database, ``log_sql`` logs each statement
    before it runs. Raises ``ValueError`` for more than one positional argument.
    """

    conn_name_attr: ClassVar[str] = "conn_id"
    default_conn_name: ClassVar[str] = "default_conn_id"
    hook_name: ClassVar[str] = "SQL database"
    supports_autocommit: ClassVar[bool] = True
    supports_executemany: ClassVar[bool] = False
    """Whether :meth:`insert_rows` uses ``executemany`` without being asked to."""
    strip_semicolon: ClassVar[bool] = False
    """Whether statements split by :meth:`split_sql_string` lose their trailing ``;``."""

    def __init__(self, *args: str, schema: str | None = None, log_sql: bool = True, **kwargs: Any) -> None:
        super().__init__(logger_name=kwargs.pop("logger_name", None))
        if len(args) > 1:
            raise ValueError(f"{type(self).__name__} takes one positional argument (the conn_id), got {len(args)}")
        conn_id = args[0] if args else kwargs.pop(self.conn_name_attr, None) or self.default_conn_name
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        setattr(self, self.conn_name_attr, conn_id)
        self.schema = schema
        self.log_sql = log_sql
        self.descriptions: list[Sequence[Sequence[Any]] | None] = []
        """The cursor ``description`` of each statement of the last :meth:`run` (one, when it returned one)."""
        self._connection: Connection | None = None
        self._engine: Engine | None = None

    # --- the connection -----------------------------------------------------------

    def get_conn_id(self) -> str:
        """The conn_id this hook uses."""
        return str(getattr(self, self.conn_name_attr))

    @property
    def connection(self) -> Connection:
        """The hook's connection (read once, then kept). Raises ``ConnectionNotFound``."""
        if self._connection is None:
            self._connection = self.get_connection(self.get_conn_id())
            ignored = ignored_extras(self._connection)
            if ignored:
                self.log.warning(
                    "connection %r: headrace does not use the extra field(s) %s (ignored)",
                    self._connection.conn_id,
                    ", ".join(ignored),
                )
        return self._connection

    def _database(self) -> str | None:
        return self.schema

    @property
    def sqlalchemy_url(self) -> URL:
        """The SQLAlchemy URL of the connection (``schema`` overriding its database)."""
        return sqlalchemy_url(self.connection, database=self._database())

    def get_uri(self) -> str:
        """The connection as a SQLAlchemy URL string, password included."""
        return self.sqlalchemy_url.render_as_string(hide_password=False)

    @property
    def dialect_name(self) -> str:
        """SQLAlchemy's name of the database: ``postgresql``, ``mysql``, ``sqlite`` …"""
        return self.sqlalchemy_url.get_backend_name()

    def get_sqlalchemy_engine(self, engine_kwargs: dict[str, Any] | None = None) -> Engine:
        """A new SQLAlchemy ``Engine`` on the connection (``engine_kwargs`` go to ``create_engine``)."""
        return create_engine(self.sqlalchemy_url, **(engine_kwargs or {}))

    def get_conn(self) -> Any:
        """A new DB-API connection (the driver's, proxied by SQLAlchemy; ``close()`` really closes it)."""
        if self._engine is None:
            self._engine = create_engine(self.sqlalchemy_url, poolclass=NullPool)
        return self._engine.raw_connection()

    def get_cursor(self) -> Any:
        """A cursor on a new connection."""
        return self.get_conn().cursor()

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        """Switch the DB-API connection ``conn`` to autocommit (or back to transactions)."""
        if not self.supports_autocommit and autocommit:
            self.log.warning("%s connection doesn't support autocommit but autocommit activated.", self.get_conn_id())
            return
        raw = getattr(conn, "driver_connection", conn)
        if isinstance(raw, sqlite3.Connection):
            raw.isolation_level = None if autocommit else "DEFERRED"
        elif callable(getattr(raw, "autocommit", None)):  # PyMySQL: a method
            raw.autocommit(autocommit)
        else:  # psycopg and most drivers: the PEP 249 attribute
            raw.autocommit = autocommit

    def get_autocommit(self, conn: Any) -> bool:
        """Whether the DB-API connection ``conn`` is in autocommit mode (False when the hook cannot tell)."""
        raw = getattr(conn, "driver_connection", conn)
        if isinstance(raw, sqlite3.Connection):
            return raw.isolation_level is None
        if callable(getattr(raw, "get_autocommit", None)):  # PyMySQL
            return bool(raw.get_autocommit()) and self.supports_autocommit
        return bool(getattr(raw, "autocommit", False)) and self.supports_autocommit

    @contextmanager
    def _autocommit_connection(self, autocommit: bool) -> Iterator[Any]:
        with closing(self.get_conn()) as conn:
            if self.supports_autocommit:
                self.set_autocommit(conn, autocommit)
            yield conn

    # --- running SQL --------------------------------------------------------------

    @staticmethod
    def strip_sql_string(sql: str) -> str:
        """``sql`` without surrounding blanks and a trailing ``;``."""
        return sql.strip().rstrip(";")

    @staticmethod
    def split_sql_string(sql: str, strip_semicolon: bool = False) -> list[str]:
        """The statements of ``sql`` (comments removed; ``;`` kept unless ``strip_semicolon``), by sqlparse."""
        statements = sqlparse.split(sqlparse.format(sql, strip_comments=True), strip_semicolon=strip_semicolon)
        return [s for s in statements if s.strip()]

    @property
    def last_description(self) -> Sequence[Sequence[Any]] | None:
        """The cursor ``description`` of the last statement of the last :meth:`run`."""
        return self.descriptions[-1] if self.descriptions else None

    def run(
        self,
        sql: str | Iterable[str],
        autocommit: bool = False,
        parameters: Parameters = None,
        handler: Callable[[Any], Any] | None = None,
        split_statements: bool = False,
        return_last: bool = True,
    ) -> Any:
        """Run one statement or several in turn (see the module docstring for what it returns).

        ``handler(cursor)`` is called after each statement; without one, ``run``
        returns None. ``parameters`` go with every statement. Raises
        ``ValueError`` when there is no statement, and the driver's error when
        one fails (nothing is committed then, unless ``autocommit``).
        """
        if isinstance(sql, str):
            if split_statements:
                statements = self.split_sql_string(sql, strip_semicolon=self.strip_semicolon)
            else:
                statements = [sql] if sql.strip() else []
        else:
            statements = list(sql)
        if not statements:
            raise ValueError(f"{type(self).__name__} ({self.get_conn_id()}): the list of SQL statements is empty")
        single = return_single_query_results(sql, return_last, split_statements)
        self.descriptions = []
        results: list[Any] = []
        last: Any = None
        with self._autocommit_connection(autocommit) as conn:
            with closing(conn.cursor()) as cur:
                for statement in statements:
                    self._run_command(cur, statement, parameters)
                    if handler is None:
                        continue
                    result = handler(cur)
                    if single:
                        last, self.descriptions = result, [cur.description]
                    else:
                        results.append(result)
                        self.descriptions.append(cur.description)
            if not self.get_autocommit(conn):
                conn.commit()
        if handler is None:
            return None
        return last if single else results

    def _run_command(self, cur: Any, statement: str, parameters: Parameters) -> None:
        if self.log_sql:
            self.log.info("Running statement: %s, parameters: %s", statement, parameters)
        if parameters:
            if isinstance(parameters, list):  # psycopg takes a tuple or a mapping, not a list
                parameters = tuple(parameters)
            cur.execute(statement, parameters)
        else:
            cur.execute(statement)
        if cur.rowcount is not None and cur.rowcount >= 0:
            self.log.info("Rows affected: %s", cur.rowcount)

    def get_records(self, sql: str | list[str], parameters: Parameters = None) -> Any:
        """Every row of ``sql`` as a list of tuples (for a list of statements: a list of those)."""
        return self.run(sql=sql, parameters=parameters, handler=fetch_all_handler)

    def get_first(self, sql: str | list[str], parameters: Parameters = None) -> Any:
        """The first row of ``sql`` as a tuple, or None (for a list of statements: a list of those)."""
        return self.run(sql=sql, parameters=parameters, handler=fetch_one_handler)

    def get_pandas_df(self, sql: str, parameters: Parameters = None, **kwargs: Any) -> pandas.DataFrame:
        """The rows of ``sql`` as a ``pandas.DataFrame`` (``kwargs`` go to ``pandas.read_sql``).

        Needs pandas installed; raises ``ImportError`` saying so when it is not.
        """
        try:
            import pandas as pd  # an optional dependency, as in Airflow
        except ImportError as exc:
            raise ImportError(f"{type(self).__name__}.get_pandas_df needs pandas: pip install pandas") from exc
        engine = self.get_sqlalchemy_engine({"poolclass": NullPool})
        try:
            with engine.connect() as conn:
                params = tuple(parameters) if isinstance(parameters, list) else parameters
                return pd.read_sql(sql, con=conn, params=params, **kwargs)
        finally:
            engine.dispose()

    def get_df(
        self, sql: str, parameters: Parameters = None, *, df_type: str = "pandas", **kwargs: Any
    ) -> pandas.DataFrame:
        """Airflow's newer name for :meth:`get_pandas_df`; ``df_type`` must be ``"pandas"``.

        Raises ``ValueError`` for another ``df_type`` (polars frames are not supported).
        """
        if df_type != "pandas":
            raise ValueError(f"{type(self).__name__}.get_df: df_type {df_type!r} is not supported (only 'pandas')")
        return self.get_pandas_df(sql, parameters, **kwargs)

    def test_connection(self) -> tuple[bool, str]:
        """``(True, message)`` when ``SELECT 1`` runs, else ``(False, the error)``."""
        try:
            self.get_first("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            return False, str(exc)
        return True, "Connection successfully tested"

    # --- inserting rows -----------------------------------------------------------

    @property
    def placeholder(self) -> str:
        """The driver's positional placeholder: ``%s`` or ``?``. Raises ``ValueError`` for another paramstyle."""
        if self._engine is None:
            self._engine = create_engine(self.sqlalchemy_url, poolclass=NullPool)
        style = getattr(self._engine.dialect.loaded_dbapi, "paramstyle", "format")
        if style in ("format", "pyformat"):
            return "%s"
        if style == "qmark":
            return "?"
        raise ValueError(f"{type(self).__name__}: insert_rows does not support the driver's paramstyle {style!r}")

    def _insert_sql(
        self, table: str, width: int, target_fields: Sequence[str] | None, replace: bool, **kwargs: Any
    ) -> str:
        columns = f" ({', '.join(target_fields)})" if target_fields else ""
        values = ", ".join([self.placeholder] * width)
        verb = "REPLACE INTO" if replace else "INSERT INTO"
        return f"{verb} {table}{columns} VALUES ({values})"

    def insert_rows(
        self,
        table: str,
        rows: Iterable[Sequence[Any]],
        target_fields: Sequence[str] | None = None,
        commit_every: int = 1000,
        replace: bool = False,
        *,
        executemany: bool = False,
        fast_executemany: bool = False,
        autocommit: bool = False,
        **kwargs: Any,
    ) -> int:
        """Insert ``rows`` (tuples) into ``table``, committing every ``commit_every`` rows (0: once at the end).

        ``target_fields`` names the columns (default: all, in table order);
        ``replace`` replaces rows with the same key (``REPLACE INTO`` on MySQL
        and SQLite; on PostgreSQL ``ON CONFLICT (replace_index) DO UPDATE``,
        which needs ``target_fields`` and ``replace_index``); ``executemany``
        sends each chunk in one call. ``fast_executemany`` is pyodbc's and has no
        effect here (a warning says so). Returns the number of rows inserted;
        raises the driver's error (rows of the failed chunk are not committed).
        """
        if fast_executemany:
            self.log.warning("insert_rows: fast_executemany is a pyodbc option and has no effect on this driver")
        count = 0
        with self._autocommit_connection(autocommit) as conn:
            with closing(conn.cursor()) as cur:
                if self.supports_executemany or executemany:
                    for chunk in _chunks(rows, commit_every):
                        values = [tuple(row) for row in chunk]
                        cur.executemany(
                            self._insert_sql(table, len(values[0]), target_fields, replace, **kwargs), values
                        )
                        conn.commit()
                        count += len(values)
                        self.log.info("Loaded %s rows into %s so far", count, table)
                else:
                    for count, row in enumerate(rows, 1):
                        cells = tuple(row)
                        cur.execute(self._insert_sql(table, len(cells), target_fields, replace, **kwargs), cells)
                        if commit_every and count % commit_every == 0:
                            conn.commit()
                            self.log.info("Loaded %s rows into %s so far", count, table)
                    conn.commit()
        self.log.info("Done loading. Loaded a total of %s rows into %s", count, table)
        return count


class PostgresHook(DbApiHook):
    """PostgreSQL through psycopg 3: ``PostgresHook(postgres_conn_id="postgres_default", database=None)``.

    ``database`` overrides the connection's ``schema`` (Airflow's meaning: the
    database name). ``insert_rows(..., replace=True, replace_index=...)`` upserts.
    """

    conn_name_attr: ClassVar[str] = "postgres_conn_id"
    default_conn_name: ClassVar[str] = "postgres_default"
    conn_type: ClassVar[str] = "postgres"
    hook_name: ClassVar[str] = "Postgres"
    supports_executemany: ClassVar[bool] = True

    def __init__(self, *args: str, database: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.database = database

    def _database(self) -> str | None:
        return self.database or self.schema

    def _insert_sql(
        self, table: str, width: int, target_fields: Sequence[str] | None, replace: bool, **kwargs: Any
    ) -> str:
        sql = super()._insert_sql(table, width, target_fields, False)
        if not replace:
            return sql
        if not target_fields:
            raise ValueError("PostgreSQL ON CONFLICT upsert syntax requires column names (target_fields)")
        index = kwargs.get("replace_index")
        if not index:
            raise ValueError("PostgreSQL ON CONFLICT upsert syntax requires an unique index (replace_index)")
        keys = [index] if isinstance(index, str) else list(index)
        updates = ", ".join(f"{c} = excluded.{c}" for c in target_fields if c not in keys)
        action = f"UPDATE SET {updates}" if updates else "NOTHING"
        return f"{sql} ON CONFLICT ({', '.join(keys)}) DO {action}"


class MySqlHook(DbApiHook):
    """MySQL and MariaDB through PyMySQL: ``MySqlHook(mysql_conn_id="mysql_default", schema=None)``."""

    conn_name_attr: ClassVar[str] = "mysql_conn_id"
    default_conn_name: ClassVar[str] = "mysql_default"
    conn_type: ClassVar[str] = "mysql"
    hook_name: ClassVar[str] = "MySQL"


class SqliteHook(DbApiHook):
    """SQLite (the standard library's driver): ``SqliteHook(sqlite_conn_id="sqlite_default")``.

    The database file is the connection's ``host`` (Airflow's convention), else its ``schema``.
    """

    conn_name_attr: ClassVar[str] = "sqlite_conn_id"
    default_conn_name: ClassVar[str] = "sqlite_default"
    conn_type: ClassVar[str] = "sqlite"
    hook_name: ClassVar[str] = "Sqlite"


__all__ = [
    "DbApiHook",
    "MySqlHook",
    "Parameters",
    "PostgresHook",
    "SqliteHook",
    "fetch_all_handler",
    "fetch_one_handler",
    "return_single_query_results",
]
