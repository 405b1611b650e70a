"""How an ExternalTaskSensor decides from the other DAG's states: one rule for its poke (in the task process)
and its trigger (:class:`~headrace.authoring.triggers.WorkflowTrigger`, in the triggerer).

Both read the same answer — the runs of the other DAG at the dates looked at, with the states of their task
instances asked for (see :class:`~headrace.supervisor.protocol.ExternalTaskStates` for its shape) — and
decide in Airflow's order:

1. :data:`FAILED` when a task instance asked for (a run, for a whole-DAG wait) is in one of ``failed_states``;
2. :data:`SKIPPED` when one is in ``skipped_states``;
3. :data:`SUCCESS` when, at every date, there is a run and everything asked for is in ``allowed_states``
   (every map index of a task; every task of the group in that run's DAG version);
4. None: not yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FAILED = "failed"
SKIPPED = "skipped"
SUCCESS = "success"


def external_status(
    answer: Mapping[str, Any],
    *,
    task_ids: Sequence[str] | None,
    task_group_id: str | None,
    allowed_states: Sequence[str],
    skipped_states: Sequence[str],
    failed_states: Sequence[str],
    date_count: int,
) -> str | None:
    """:data:`FAILED`, :data:`SKIPPED`, :data:`SUCCESS` or None (keep waiting) for ``answer`` (see the module
    docstring); ``date_count``: how many logical dates were looked at."""
    runs = list(answer.get("runs") or [])
    whole_dag = not task_ids and task_group_id is None
    if failed_states and _any_in(runs, whole_dag, failed_states):
        return FAILED
    if skipped_states and _any_in(runs, whole_dag, skipped_states):
        return SKIPPED
    groups: Mapping[str, list[str]] = answer.get("group_task_ids") or {}
    done = 0
    for run in runs:
        if whole_dag:
            done += run.get("state") in allowed_states
            continue
        expected = task_ids if task_ids else groups.get(str(run.get("run_id")))
        if not expected:  # the run's DAG version has no such group
            continue
        by_task: dict[str, list[str]] = {}
        for task_id, _, state in run.get("task_instances") or []:
            by_task.setdefault(str(task_id), []).append(str(state))
        if all(by_task.get(t) and all(s in allowed_states for s in by_task[t]) for t in expected):
            done += 1
    return SUCCESS if done == date_count else None


def _any_in(runs: list[Mapping[str, Any]], whole_dag: bool, states: Sequence[str]) -> bool:
    for run in runs:
        if whole_dag:
            if run.get("state") in states:
                return True
        elif any(str(state) in states for _, _, state in run.get("task_instances") or []):
            return True
    return False


__all__ = ["FAILED", "SKIPPED", "SUCCESS", "external_status"]
