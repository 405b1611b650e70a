"""headrace: a workflow orchestrator for Python, in the family of Apache Airflow.

This package exports the authoring API only; importing it loads no database,
configuration or executor code. Operators live in ``headrace.operators``.

The names below are loaded on first use (PEP 562 ``__getattr__``), so that a
command that needs no authoring code (``headrace dags list``, ``--help``) does
not pay for importing it; ``from headrace import DAG`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.authoring.asset_decorator import asset
    from headrace.authoring.assets import Asset, AssetAlias, AssetAll, AssetAny, Dataset
    from headrace.authoring.context import get_current_context
    from headrace.authoring.dag import DAG
    from headrace.authoring.decorators import dag, setup, task, teardown
    from headrace.authoring.edges import Label
    from headrace.authoring.params import Param, ParamsDict
    from headrace.authoring.secrets import Connection, Variable
    from headrace.authoring.sensors import BaseSensorOperator, PokeReturnValue
    from headrace.authoring.task import BaseOperator, chain
    from headrace.authoring.task_group import TaskGroup, task_group
    from headrace.authoring.trigger_rules import TriggerRule
    from headrace.authoring.weight_rule import WeightRule
    from headrace.authoring.xcom import XComArg
    from headrace.exceptions import FailTask, RetryTask, SkipTask

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "DAG": "headrace.authoring.dag",
    "dag": "headrace.authoring.decorators",
    "task": "headrace.authoring.decorators",
    "setup": "headrace.authoring.decorators",
    "teardown": "headrace.authoring.decorators",
    "Connection": "headrace.authoring.secrets",
    "get_current_context": "headrace.authoring.context",
    "Variable": "headrace.authoring.secrets",
    "Param": "headrace.authoring.params",
    "ParamsDict": "headrace.authoring.params",
    "BaseOperator": "headrace.authoring.task",
    "chain": "headrace.authoring.task",
    "TaskGroup": "headrace.authoring.task_group",
    "task_group": "headrace.authoring.task_group",
    "Label": "headrace.authoring.edges",
    "TriggerRule": "headrace.authoring.trigger_rules",
    "WeightRule": "headrace.authoring.weight_rule",
    "XComArg": "headrace.authoring.xcom",
    "BaseSensorOperator": "headrace.authoring.sensors",
    "PokeReturnValue": "headrace.authoring.sensors",
    "Asset": "headrace.authoring.assets",
    "AssetAlias": "headrace.authoring.assets",
    "AssetAll": "headrace.authoring.assets",
    "AssetAny": "headrace.authoring.assets",
    "Dataset": "headrace.authoring.assets",
    "asset": "headrace.authoring.asset_decorator",
    "FailTask": "headrace.exceptions",
    "RetryTask": "headrace.exceptions",
    "SkipTask": "headrace.exceptions",
}
"""Exported name -> the module that defines it."""

__all__ = [
    # DAGs and tasks
    "DAG",
    "dag",
    "task",
    "setup",
    "teardown",
    "chain",
    "BaseOperator",
    # waiting for a condition (more sensors in headrace.sensors)
    "BaseSensorOperator",
    "PokeReturnValue",
    # grouping tasks and labelling edges
    "TaskGroup",
    "task_group",
    "Label",
    # DAG params (validated against their JSON schemas when a run is triggered)
    "Param",
    "ParamsDict",
    # assets (data-aware scheduling)
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "Dataset",
    "asset",
    # passing data and deciding what runs
    "XComArg",
    "TriggerRule",
    "WeightRule",
    # inside a running task: its context, variables and connections
    "get_current_context",
    "Variable",
    "Connection",
    # ending a try from task code
    "SkipTask",
    "FailTask",
    "RetryTask",
    # metadata
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import an exported name on first use and keep it in the module (PEP 562).

    Raises AttributeError for a name the package does not export (``from headrace import X``
    then fails with Python's usual ImportError).
    """
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'headrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
