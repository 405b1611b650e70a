"""The optional per-task fields of a serialized DAG: written only when not their default.

Leaving defaults out keeps the hash (and so the version) of every DAG that
does not use them unchanged. :data:`OPTION_DEFAULTS` is the one table both
directions read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headrace.authoring.setup_teardown import flat_relatives

OPTION_DEFAULTS: dict[str, Any] = {
    "is_setup": False,
    "is_teardown": False,
    "on_failure_fail_dagrun": False,
    "weight_rule": "downstream",
    "depends_on_past": False,
    "wait_for_downstream": False,
    "ignore_first_depends_on_past": False,
    "has_on_execute_callback": False,
    "has_on_skipped_callback": False,
}
"""Field name → default (a ``SerializedTask`` attribute each)."""


def task_options(task: Any) -> dict[str, Any]:
    """The fields of :data:`OPTION_DEFAULTS` whose value on operator ``task`` is not the default."""
    values = {
        "is_setup": bool(task.is_setup),
        "is_teardown": bool(task.is_teardown),
        "on_failure_fail_dagrun": bool(task.on_failure_fail_dagrun),
        "weight_rule": str(task.weight_rule),
        "depends_on_past": bool(task.depends_on_past),
        "wait_for_downstream": bool(task.wait_for_downstream),
        "ignore_first_depends_on_past": bool(task.ignore_first_depends_on_past),
        "has_on_execute_callback": bool(task.on_execute_callback),
        "has_on_skipped_callback": bool(task.on_skipped_callback),
    }
    return {k: v for k, v in values.items() if v != OPTION_DEFAULTS[k]}


def read_options(d: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of :data:`OPTION_DEFAULTS` from a serialized task ``d`` (the default where absent)."""
    return {k: type(default)(d.get(k, default)) for k, default in OPTION_DEFAULTS.items()}


def priority_weights(tasks: Mapping[str, Any]) -> dict[str, int]:
    """task id → the priority its task instances get (Airflow's ``priority_weight_total``).

    ``tasks``: id → node with ``priority_weight``, ``weight_rule`` and the
    up/downstream ids. ``downstream``: its own weight plus every task's
    downstream of it; ``upstream``: plus every task's upstream of it;
    ``absolute``: its own.
    """
    out: dict[str, int] = {}
    for tid, task in tasks.items():
        rule = task.weight_rule
        if rule == "absolute":
            out[tid] = task.priority_weight
            continue
        relatives = flat_relatives(tasks, tid, upstream=rule == "upstream")
        out[tid] = task.priority_weight + sum(tasks[r].priority_weight for r in relatives)
    return out


__all__ = ["OPTION_DEFAULTS", "priority_weights", "read_options", "task_options"]
