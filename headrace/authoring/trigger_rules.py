"""Trigger rules: when a task may run, given the states of its direct upstream tasks.

The semantics follow Apache Airflow's ``TriggerRuleDep`` (``airflow/ti_deps/deps/
trigger_rule_dep.py``, ``_evaluate_direct_relatives`` with ``flag_upstream_failed``
on, as the scheduler calls it) and the trigger rule table in Airflow's
documentation ("Concepts → DAGs → Trigger Rules"). For every rule the decision is
one of:

* ``RUN``: the task may be scheduled now;
* ``WAIT``: not yet decidable, some upstream task has not finished;
* ``SKIP``: the rule can never be met in a way that calls for skipping;
* ``UPSTREAM_FAILED``: the rule can never be met because of upstream failures.

``all_done_setup_success`` (a teardown's rule) waits for every upstream task,
then needs one upstream setup to have succeeded (all skipped: skipped; none
succeeded: upstream_failed); ``all_done_min_one_success`` skips as soon as an
upstream task is skipped and otherwise needs all done with one success
(else upstream_failed), as Airflow 3's code does. :func:`evaluate_setups` is
Airflow's separate constraint on a task's indirect setups.

One deliberate choice: for ``one_success``, when every upstream task is done and
none succeeded, Airflow 2.x always answers ``upstream_failed``; we answer
``upstream_failed`` only if some upstream failed, and ``skipped`` when they were all
skipped (a skipped branch is not a failure).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TriggerRule(str, Enum):
    """Airflow's trigger rules, compared equal to their string values."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"

    def __str__(self) -> str:
        return self.value


class Decision(str, Enum):
    """What the scheduler should do with a task instance in state ``none``."""

    WAIT = "wait"
    RUN = "run"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class UpstreamCounts:
    """Counts of a task's *direct* upstream task instances in one DAG run, by state."""

    total: int
    """Number of direct upstream tasks."""
    success: int = 0
    """Upstream in state ``success``."""
    failed: int = 0
    """Upstream in state ``failed``."""
    upstream_failed: int = 0
    """Upstream in state ``upstream_failed``."""
    skipped: int = 0
    """Upstream in state ``skipped``."""
    done: int = -1
    """Upstream in a finished state (success, failed, upstream_failed, skipped).

    Left at -1 it is computed as the sum of the four counts above.
    """
    setups: int = 0
    """How many of the direct upstream tasks are setup tasks."""
    setup_success: int = 0
    """Upstream setup tasks in state ``success``."""
    setup_skipped: int = 0
    """Upstream setup tasks in state ``skipped``."""

    def __post_init__(self) -> None:
        finished = self.success + self.failed + self.upstream_failed + self.skipped
        if self.done == -1:
            object.__setattr__(self, "done", finished)
        if min(self.total, self.success, self.failed, self.upstream_failed, self.skipped) < 0:
            raise ValueError(f"upstream counts must not be negative: {self}")
        if self.done != finished or self.done > self.total:
            raise ValueError(f"inconsistent upstream counts: {self}")

    @property
    def all_done(self) -> bool:
        """True when every direct upstream task has finished."""
        return self.done >= self.total


def evaluate(rule: TriggerRule | str, counts: UpstreamCounts) -> Decision:
    """Decide whether a task with trigger rule ``rule`` may run, given ``counts``.

    A task with no upstream tasks (``counts.total == 0``) always gets ``RUN``.
    Raises ``ValueError`` for an unknown rule name.
    """
    rule = TriggerRule(rule)
    if counts.total == 0 or rule is TriggerRule.ALWAYS:
        return Decision.RUN
    c = counts
    failures = c.failed + c.upstream_failed
    done = c.all_done
    if rule is TriggerRule.ALL_SUCCESS:
        if failures:
            return Decision.UPSTREAM_FAILED
        if c.skipped:
            return Decision.SKIP
        return Decision.RUN if c.success == c.total else Decision.WAIT
    if rule is TriggerRule.ALL_FAILED:
        if c.success or c.skipped:
            return Decision.SKIP
        return Decision.RUN if failures == c.total else Decision.WAIT
    if rule is TriggerRule.ALL_DONE:
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.ALL_DONE_SETUP_SUCCESS:
        if not done:
            return Decision.WAIT
        if c.setups and c.setup_skipped >= c.setups:
            return Decision.SKIP
        return Decision.UPSTREAM_FAILED if c.setups and not c.setup_success else Decision.RUN
    if rule is TriggerRule.ALL_DONE_MIN_ONE_SUCCESS:
        if c.skipped:
            return Decision.SKIP
        if done:
            return Decision.RUN if c.success else Decision.UPSTREAM_FAILED
        return Decision.WAIT
    if rule is TriggerRule.ALL_SKIPPED:
        if c.success or failures:
            return Decision.SKIP
        return Decision.RUN if c.skipped == c.total else Decision.WAIT
    if rule is TriggerRule.ONE_SUCCESS:
        if c.success:
            return Decision.RUN
        if done:
            return Decision.UPSTREAM_FAILED if failures else Decision.SKIP
        return Decision.WAIT
    if rule is TriggerRule.ONE_FAILED:
        if failures:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule is TriggerRule.ONE_DONE:
        if c.success or c.failed:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule is TriggerRule.NONE_FAILED:
        if failures:
            return Decision.UPSTREAM_FAILED
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
        if failures:
            return Decision.UPSTREAM_FAILED
        if c.skipped == c.total:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.NONE_SKIPPED:
        if c.skipped:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    raise ValueError(f"unknown trigger rule {rule!r}")  # pragma: no cover


def evaluate_setups(counts: UpstreamCounts) -> Decision:
    """Airflow's setup constraint: what a task's *indirect* relevant setups (``counts``) allow.

    ``UPSTREAM_FAILED`` if one failed (or is upstream_failed), ``SKIP`` if one
    was skipped, ``WAIT`` while some have not succeeded, else ``RUN`` (then the
    task's own trigger rule decides). A task with no such setups gets ``RUN``.
    """
    if counts.failed or counts.upstream_failed:
        return Decision.UPSTREAM_FAILED
    if counts.skipped:
        return Decision.SKIP
    return Decision.RUN if counts.success >= counts.total else Decision.WAIT


WAITS_FOR_ALL: frozenset[TriggerRule] = frozenset(
    {
        TriggerRule.ALL_SUCCESS,
        TriggerRule.ALL_FAILED,
        TriggerRule.ALL_DONE,
        TriggerRule.ALL_DONE_SETUP_SUCCESS,
        TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        TriggerRule.ALL_SKIPPED,
        TriggerRule.NONE_FAILED,
        TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        TriggerRule.NONE_SKIPPED,
    }
)
"""Rules that only answer ``RUN`` once every upstream task has finished."""
