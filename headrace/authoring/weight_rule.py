"""``WeightRule``: how a task instance's queueing priority is computed (Airflow's names and values)."""

from __future__ import annotations

from enum import Enum


class WeightRule(str, Enum):
    """Airflow's weight rules, compared equal to their string values.

    ``DOWNSTREAM`` (the default): the task's ``priority_weight`` plus those of every task downstream
    of it; ``UPSTREAM``: plus every task upstream of it; ``ABSOLUTE``: its own alone.
    """

    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"
    ABSOLUTE = "absolute"

    def __str__(self) -> str:
        return self.value


_DEFAULT = {"weight_rule": WeightRule.DOWNSTREAM}


def set_default_weight_rule(rule: WeightRule | str) -> None:
    """Choose the ``weight_rule`` of tasks that do not give one, in this process (Airflow's
    ``core.default_task_weight_rule``). The DAG processor calls it with that setting before it imports DAG
    files. Raises ``ValueError`` naming the allowed rules."""
    try:
        _DEFAULT["weight_rule"] = WeightRule(rule)
    except ValueError:
        allowed = ", ".join(r.value for r in WeightRule)
        raise ValueError(f"core.default_task_weight_rule must be one of {allowed}, got {rule!r}") from None


def default_weight_rule() -> WeightRule:
    """The ``weight_rule`` of a task that gives none (:func:`set_default_weight_rule`; ``downstream`` unless set)."""
    return _DEFAULT["weight_rule"]


__all__ = ["WeightRule", "default_weight_rule", "set_default_weight_rule"]
