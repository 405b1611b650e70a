"""Operators that reach outside systems through connections: ``EmailOperator`` and ``SQLExecuteQueryOperator``.

They are exported at the public path ``headrace.operators``; the hooks they use live in :mod:`headrace.hooks`.
"""

from __future__ import annotations

from headrace.integrations.email import EmailOperator
from headrace.integrations.sql import BaseSQLOperator, SQLExecuteQueryOperator

__all__ = ["BaseSQLOperator", "EmailOperator", "SQLExecuteQueryOperator"]
