"""Result handlers of the SQL hooks (Airflow's ``common.sql.hooks.handlers``): what ``run`` makes of a cursor.

A handler is called with the DB-API cursor after each statement. This module imports no database
library, so an operator can name a handler without loading SQLAlchemy when its DAG file is parsed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def fetch_all_handler(cursor: Any) -> list[tuple[Any, ...]] | None:
    """Every row of the statement as a list of tuples; None when it returns no rows (no ``description``)."""
    if cursor.description is None:
        return None
    return [tuple(row) for row in cursor.fetchall()]


def fetch_one_handler(cursor: Any) -> tuple[Any, ...] | None:
    """The first row as a tuple; None when there is none or the statement returns no rows."""
    if cursor.description is None:
        return None
    row = cursor.fetchone()
    return None if row is None else tuple(row)


def return_single_query_results(sql: str | Iterable[str], return_last: bool, split_statements: bool | None) -> bool:
    """Whether ``run`` returns one statement's result rather than a list of them (Airflow's rule)."""
    return isinstance(sql, str) and (return_last or not split_statements)


__all__ = ["fetch_all_handler", "fetch_one_handler", "return_single_query_results"]
