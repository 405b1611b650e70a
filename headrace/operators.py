"""The standard operators, at their public import path: ``from headrace.operators import BashOperator``."""

from __future__ import annotations

from headrace.authoring.operators import (
    BashOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from headrace.integrations import EmailOperator, SQLExecuteQueryOperator

__all__ = [
    "BashOperator",
    "BranchPythonOperator",
    "EmailOperator",
    "EmptyOperator",
    "PythonOperator",
    "SQLExecuteQueryOperator",
    "ShortCircuitOperator",
]
