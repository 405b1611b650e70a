"""Hooks: code that talks to an outside system through a connection (Airflow's hooks).

* :class:`BaseHook` — ``get_connection(conn_id)`` and ``get_hook(conn_id)``;
* :class:`DbApiHook` and its database flavours :class:`PostgresHook`,
  :class:`MySqlHook` (MySQL and MariaDB) and :class:`SqliteHook` — Airflow's SQL
  hook surface (``run``, ``get_records``, ``get_first``, ``get_pandas_df``,
  ``insert_rows``, ``get_sqlalchemy_engine``) over a SQLAlchemy URL built from
  the connection (:mod:`headrace.hooks.urls`; docs/hooks.md);
* :class:`SmtpHook` — email through an ``smtp`` connection (or the ``[alerts]`` settings).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from headrace.hooks.base import BaseHook
from headrace.hooks.handlers import fetch_all_handler, fetch_one_handler, return_single_query_results

if TYPE_CHECKING:
    from headrace.hooks.smtp import SmtpHook
    from headrace.hooks.sql import DbApiHook, MySqlHook, PostgresHook, SqliteHook

_LAZY = {
    "DbApiHook": "headrace.hooks.sql",
    "MySqlHook": "headrace.hooks.sql",
    "PostgresHook": "headrace.hooks.sql",
    "SqliteHook": "headrace.hooks.sql",
    "SmtpHook": "headrace.hooks.smtp",
}


def __getattr__(name: str) -> Any:
    # The SQL hooks load SQLAlchemy: only when one is used, not when a DAG file imports this package.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'headrace.hooks' has no attribute {name!r}")


__all__ = [
    "BaseHook",
    "DbApiHook",
    "MySqlHook",
    "PostgresHook",
    "SmtpHook",
    "SqliteHook",
    "fetch_all_handler",
    "fetch_one_handler",
    "return_single_query_results",
]
