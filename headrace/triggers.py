"""The triggers, at their public import path: ``from headrace.triggers import TimeDeltaTrigger``.

A deferrable task hands one to the triggerer with ``self.defer(trigger=..., method_name=...)``; see
``docs/deferral.md`` and :mod:`headrace.authoring.triggers`.
"""

from __future__ import annotations

from headrace.authoring.triggers import (
    BaseTrigger,
    DagStateTrigger,
    DateTimeTrigger,
    FileTrigger,
    StartTriggerArgs,
    TimeDeltaTrigger,
    TriggerEvent,
    WorkflowTrigger,
)

__all__ = [
    "BaseTrigger",
    "DagStateTrigger",
    "DateTimeTrigger",
    "FileTrigger",
    "StartTriggerArgs",
    "TimeDeltaTrigger",
    "TriggerEvent",
    "WorkflowTrigger",
]
