"""DAG warnings: what a DAG author wrote that headrace accepted and ignores (Airflow's name).

A DAG file that defines a DAG with an argument headrace does not act on must
not lose it silently. :func:`dag_warnings` lists, for one DAG:

* ``unsupported_argument`` — an Airflow 3 ``DAG`` argument headrace ignores
  (:data:`~headrace.authoring.airflow_args.IGNORED_DAG_ARGS`: ``access_control``,
  ``owner_links``, ``fail_fast``, ``max_consecutive_failed_dag_runs``, …) given a value other than
  Airflow's default; or an Airflow operator argument
  (:data:`~headrace.authoring.task.AIRFLOW_OPERATOR_ARGS`) given to a task that
  does not accept it, e.g. ``email_on_failure``, ``sla``, ``depends_on_past``;
  or a ``default_args`` key of that kind which no task of the DAG accepts;
  or ``start_from_trigger`` on a mapped task (not supported, as in Airflow 3: its instances start in a worker);
* ``unused_default_arg`` — any other ``default_args`` key that no task of the
  DAG accepts (for a task group's ``default_args``: no task of the group) (``default_args`` apply only where an operator accepts the key,
  as in Airflow, since they are shared by operators of different kinds).

``start_date`` and ``end_date`` in ``default_args`` are the DAG's own (as in
Airflow) and never warned about; ``params`` in a DAG's or task group's
``default_args`` is merged into the params of its tasks. The DAG processor stores the warnings with
the DAG on every parse (table ``dag_warning``), replacing the previous ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from headrace.authoring.airflow_args import IGNORED_DAG_ARGS
from headrace.authoring.dag import DAG
from headrace.authoring.start_trigger import wants_start_from_trigger
from headrace.authoring.task import AIRFLOW_OPERATOR_ARGS, accepted_arguments

UNSUPPORTED_ARGUMENT = "unsupported_argument"
UNUSED_DEFAULT_ARG = "unused_default_arg"

_DAG_KEYS = frozenset({"start_date", "end_date"})
"""``default_args`` keys the DAG itself reads."""


@dataclass(frozen=True)
class DagWarning:
    """One thing a DAG's author wrote that headrace ignores."""

    kind: str
    """``unsupported_argument`` or ``unused_default_arg``."""
    message: str
    """One line naming the argument (and the task, if one task was given it)."""


def dag_warnings(dag: DAG) -> list[DagWarning]:
    """The warnings of ``dag``: ignored DAG arguments, then ignored task arguments (by task id), then
    ``default_args`` keys."""
    found: list[DagWarning] = [
        DagWarning(
            UNSUPPORTED_ARGUMENT,
            f"DAG argument {name!r} is an Airflow argument headrace does not support; it is ignored "
            f"({IGNORED_DAG_ARGS[name][1]})",
        )
        for name in dag.ignored_arguments
    ]
    for task_id in sorted(dag.task_dict):
        task = dag.task_dict[task_id]
        for name in task.ignored_arguments:
            found.append(
                DagWarning(
                    UNSUPPORTED_ARGUMENT,
                    f"task {task_id!r}: argument {name!r} is an Airflow operator argument "
                    "headrace does not support yet; it is ignored",
                )
            )
        for name, why in task.argument_notes:
            found.append(DagWarning(UNSUPPORTED_ARGUMENT, f"task {task_id!r}: argument {name!r} {why}"))
        if task.is_mapped and wants_start_from_trigger(task):
            found.append(
                DagWarning(
                    UNSUPPORTED_ARGUMENT,
                    f"task {task_id!r}: start_from_trigger is not supported on a mapped task (nor in Airflow 3); "
                    "its task instances start in a worker, in execute",
                )
            )
    accepted: set[str] = set()
    for cls in {type(t) for t in dag.task_dict.values()}:
        accepted |= accepted_arguments(cls)
    for key in sorted(set(dag.default_args) - accepted - _DAG_KEYS):
        if key in AIRFLOW_OPERATOR_ARGS:
            found.append(
                DagWarning(
                    UNSUPPORTED_ARGUMENT,
                    f"default_args key {key!r} is an Airflow operator argument headrace does "
                    "not support yet; it is ignored",
                )
            )
        else:
            found.append(
                DagWarning(
                    UNUSED_DEFAULT_ARG,
                    f"default_args key {key!r} is accepted by no task of DAG {dag.dag_id!r}; it is ignored",
                )
            )
    for group_id, group in dag.task_group_dict.items():
        in_group: set[str] = set()
        for cls in {type(t) for t in group.iter_tasks()}:
            in_group |= accepted_arguments(cls)
        for key in sorted(set(group.default_args) - in_group - {"params"}):  # params: merged into its tasks'
            kind = UNSUPPORTED_ARGUMENT if key in AIRFLOW_OPERATOR_ARGS else UNUSED_DEFAULT_ARG
            found.append(
                DagWarning(
                    kind,
                    f"task group {group_id!r}: default_args key {key!r} is accepted by no task of the group; it is ignored",
                )
            )
    return found


__all__ = ["UNSUPPORTED_ARGUMENT", "UNUSED_DEFAULT_ARG", "DagWarning", "dag_warnings"]
