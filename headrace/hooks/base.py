"""``BaseHook``: Airflow's base class of hooks, the code that talks to one outside system through a connection.

A hook finds its connection with :meth:`BaseHook.get_connection`, which is
``Connection.get``: inside a running task the try's supervisor reads it from
the metadata database (decrypted, and masked in the try's log from then on).
Outside a running task — in DAG file top-level code — there is no connection
to read and ``SecretsUnavailable`` is raised, as for ``Variable.get``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, ClassVar

from headrace.authoring.secrets import Connection

HOOKS_BY_CONN_TYPE: dict[str, str] = {
    "postgres": "headrace.hooks.sql:PostgresHook",
    "postgresql": "headrace.hooks.sql:PostgresHook",
    "mysql": "headrace.hooks.sql:MySqlHook",
    "mariadb": "headrace.hooks.sql:MySqlHook",
    "sqlite": "headrace.hooks.sql:SqliteHook",
    "smtp": "headrace.hooks.smtp:SmtpHook",
}
"""``conn_type`` → ``module:class`` of its hook (:meth:`BaseHook.get_hook`); any other type gets the
generic ``DbApiHook`` when its connection names a ``sqlalchemy_scheme`` extra."""


class BaseHook:
    """The base of every hook: its connection and its logger.

    Subclasses set ``conn_name_attr`` (the keyword naming the connection, e.g.
    ``postgres_conn_id``), ``default_conn_name``, ``conn_type`` and ``hook_name``,
    and implement :meth:`get_conn`.
    """

    conn_name_attr: ClassVar[str] = ""
    """Name of the constructor keyword (and attribute) holding the conn_id."""
    default_conn_name: ClassVar[str] = ""
    """conn_id used when none is given."""
    conn_type: ClassVar[str] = ""
    """The connection type this hook is for (``postgres``, ``mysql`` …)."""
    hook_name: ClassVar[str] = ""
    """Human name of the system."""

    def __init__(self, logger_name: str | None = None) -> None:
        self._log = logging.getLogger(logger_name or f"headrace.hooks.{type(self).__name__}")

    @property
    def log(self) -> logging.Logger:
        """The hook's logger (in a task: into the try's log)."""
        return self._log

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """The connection ``conn_id``, as stored with ``headrace connections add``.

        Raises ``ConnectionNotFound`` (a ``KeyError``) when there is none, and
        ``SecretsUnavailable`` outside a running task.
        """
        return Connection.get(conn_id)

    @classmethod
    def get_hook(cls, conn_id: str, hook_params: dict[str, Any] | None = None) -> BaseHook:
        """The hook for connection ``conn_id``, chosen by its ``conn_type`` (see :data:`HOOKS_BY_CONN_TYPE`).

        ``hook_params`` are passed to the hook's constructor. Raises
        ``ConnectionNotFound``, and ``ValueError`` naming the connection when its
        type has no hook in headrace.
        """
        conn = cls.get_connection(conn_id)
        hook_class = hook_class_for(conn)
        params = dict(hook_params or {})
        params.setdefault(hook_class.conn_name_attr, conn_id)
        return hook_class(**params)

    def get_conn(self) -> Any:
        """A connection to the outside system (each hook says what it is)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_conn()")


def hook_class_for(conn: Connection) -> type[BaseHook]:
    """The hook class for ``conn``'s type; raises ``ValueError`` naming the connection when there is none."""
    path = HOOKS_BY_CONN_TYPE.get(conn.conn_type.lower())
    if path is None and conn.extra_dejson.get("sqlalchemy_scheme"):
        path = "headrace.hooks.sql:DbApiHook"
    if path is None:
        raise ValueError(
            f"connection {conn.conn_id!r}: headrace has no hook for conn_type {conn.conn_type!r} "
            f"(supported: {', '.join(sorted(HOOKS_BY_CONN_TYPE))}, or any type with a sqlalchemy_scheme extra)"
        )
    module, _, name = path.partition(":")
    hook_class: type[BaseHook] = getattr(importlib.import_module(module), name)
    return hook_class


__all__ = ["HOOKS_BY_CONN_TYPE", "BaseHook", "hook_class_for"]
