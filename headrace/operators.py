"""The standard operators, at their public import path: ``from headrace.operators import BashOperator``."""

from __future__ import annotations

from headrace.authoring.branching import (
    BaseBranchOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    LatestOnlyOperator,
    WeekDay,
)
from headrace.authoring.operators import (
    BashOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from headrace.authoring.python_virtualenv import (
    BranchExternalPythonOperator,
    BranchPythonVirtualenvOperator,
    ExternalPythonOperator,
    PythonVirtualenvOperator,
)
from headrace.authoring.trigger_dagrun import TriggerDagRunOperator
from headrace.integrations import EmailOperator, SQLExecuteQueryOperator

__all__ = [
    "BaseBranchOperator",
    "BashOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchExternalPythonOperator",
    "BranchPythonOperator",
    "EmailOperator",
    "BranchPythonVirtualenvOperator",
    "EmptyOperator",
    "ExternalPythonOperator",
    "LatestOnlyOperator",
    "PythonOperator",
    "SQLExecuteQueryOperator",
    "PythonVirtualenvOperator",
    "ShortCircuitOperator",
    "TriggerDagRunOperator",
    "WeekDay",
]
