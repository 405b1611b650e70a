"""The optional per-task fields of a serialized DAG: written only when not their default.

Leaving defaults out keeps the hash (and so the version) of every DAG that
does not use them unchanged. :data:`OPTION_DEFAULTS` is the one table both
directions read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headrace.authoring.graph import topological_order

OPTION_DEFAULTS: dict[str, Any] = {
    "is_setup": False,
    "is_teardown": False,
    "on_failure_fail_dagrun": False,
    "weight_rule": "downstream",
    "depends_on_past": False,
    "wait_for_downstream": False,
    "ignore_first_depends_on_past": False,
    "wait_for_past_depends_before_skipping": False,
    "has_on_execute_callback": False,
    "has_on_skipped_callback": False,
    "outlets": (),
    "inlets": (),
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
        "wait_for_past_depends_before_skipping": bool(getattr(task, "wait_for_past_depends_before_skipping", False)),
        "has_on_execute_callback": bool(task.on_execute_callback),
        "has_on_skipped_callback": bool(task.on_skipped_callback),
        "outlets": tuple(a.as_json() for a in getattr(task, "outlets", ())),
        "inlets": tuple(a.as_json() for a in getattr(task, "inlets", ())),
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
    ``absolute``: its own. The relatives of every task are bit sets built in
    one pass in topological order, and summed per distinct weight, so a
    1,000-task chain takes milliseconds (``benchmarks/priority_weights.py``).
    """
    order = topological_order({tid: [d for d in t.downstream_task_ids if d in tasks] for tid, t in tasks.items()})
    bit = {tid: 1 << i for i, tid in enumerate(order)}
    masks: dict[int, int] = {}
    for tid, task in tasks.items():
        masks[task.priority_weight] = masks.get(task.priority_weight, 0) | bit[tid]
    rules = {task.weight_rule for task in tasks.values()}
    below: dict[str, int] = {}
    if "downstream" in rules:
        for tid in reversed(order):
            m = 0
            for d in tasks[tid].downstream_task_ids:
                if d in bit:
                    m |= bit[d] | below[d]
            below[tid] = m
    above: dict[str, int] = {}
    if "upstream" in rules:
        for tid in order:
            m = 0
            for u in tasks[tid].upstream_task_ids:
                if u in bit:
                    m |= bit[u] | above[u]
            above[tid] = m
    out: dict[str, int] = {}
    for tid, task in tasks.items():
        relatives = below.get(tid, 0) if task.weight_rule == "downstream" else above.get(tid, 0)
        extra = 0 if task.weight_rule == "absolute" else sum(w * (relatives & m).bit_count() for w, m in masks.items())
        out[tid] = task.priority_weight + extra
    return out


__all__ = ["OPTION_DEFAULTS", "priority_weights", "read_options", "task_options"]
