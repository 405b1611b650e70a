"""headrace: a workflow orchestrator for Python, in the family of Apache Airflow.

This package exports the authoring API only; importing it loads no database,
configuration or executor code. Operators live in ``headrace.operators``.
"""

from __future__ import annotations

from headrace.authoring.dag import DAG
from headrace.authoring.decorators import dag, task
from headrace.authoring.secrets import Connection, Variable
from headrace.authoring.task import BaseOperator, chain
from headrace.authoring.trigger_rules import TriggerRule
from headrace.authoring.xcom import XComArg
from headrace.exceptions import FailTask, RetryTask, SkipTask

__version__ = "0.1.0"

__all__ = [
    # DAGs and tasks
    "DAG",
    "dag",
    "task",
    "chain",
    "BaseOperator",
    # passing data and deciding what runs
    "XComArg",
    "TriggerRule",
    # variables and connections (inside a running task)
    "Variable",
    "Connection",
    # ending a try from task code
    "SkipTask",
    "FailTask",
    "RetryTask",
    # metadata
    "__version__",
]
