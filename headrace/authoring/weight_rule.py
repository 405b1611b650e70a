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


__all__ = ["WeightRule"]
