"""States of task instances and DAG runs, and the transitions allowed between them.

Each state is a ``str`` Enum, so a state compares equal to its database value
(``TaskInstanceState.SUCCESS == "success"``). ``TI_TRANSITIONS`` and
``RUN_TRANSITIONS`` list, for every state, the states it may move to. The one
writer of state, :func:`headrace.db.transitions.set_ti_state`, checks this table
before it issues its compare-and-set ``UPDATE``.

The task instance life cycle follows Apache Airflow's (``none → scheduled →
queued → running → success | failed | up_for_retry | …``), with ``none`` stored
as the string ``"none"`` rather than SQL NULL so that compare-and-set works
with a plain ``WHERE state = :expected``. A sensor in reschedule mode waits
without a process in ``up_for_reschedule`` (``running → up_for_reschedule →
scheduled``, the same ``try_number``), and a deferred task in ``deferred``
(``running → deferred → scheduled`` when its trigger fires, the same ``try_number``; a task that starts in the
triggerer goes ``scheduled → deferred`` with no process), as DESIGN.md describes.
"""

from __future__ import annotations

from enum import Enum


class TaskInstanceState(str, Enum):
    """State of one task in one DAG run."""

    NONE = "none"
    """Created with its DAG run; its upstream tasks have not yet let it run."""
    SCHEDULED = "scheduled"
    """Dependencies are met; waiting for a slot (parallelism, pool, max_active_tasks)."""
    QUEUED = "queued"
    """Handed to an executor; ``try_number`` already counts the coming try."""
    RUNNING = "running"
    """A supervisor has claimed the try and started the task process."""
    SUCCESS = "success"
    """The last try finished without error."""
    FAILED = "failed"
    """The last try failed and no retries are left (or the failure forbids retry)."""
    UP_FOR_RETRY = "up_for_retry"
    """The last try failed; another try is due at ``next_retry_at``."""
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    """A sensor in ``mode="reschedule"`` poked and found its criteria unmet: its process ended and its slot is
    free (no process exists while it waits); the next poke, in the same ``try_number``, is due at
    ``reschedule_date`` (Airflow's ``up_for_reschedule``)."""
    DEFERRED = "deferred"
    """The task handed its wait to a trigger (``self.defer(...)``): its process ended and its slot is free; the
    triggerer runs the trigger, and its event sends the task instance back to ``scheduled`` to resume, in the
    same ``try_number``, in ``next_method`` (Airflow's ``deferred``)."""
    UPSTREAM_FAILED = "upstream_failed"
    """Never ran: its trigger rule can no longer be met because upstream failed."""
    SKIPPED = "skipped"
    """Never ran (or asked to be skipped): a branch, short-circuit or trigger rule skipped it."""
    REMOVED = "removed"
    """A mapped task's index past its new length when it was expanded again (Airflow's ``removed``): it does
    not run, trigger rules do not count it and the DAG run's outcome ignores it."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        """True for the states a DAG run can end with."""
        return self in TI_FINISHED


class DagRunState(str, Enum):
    """State of one DAG run."""

    QUEUED = "queued"
    """Created; waiting for ``max_active_runs`` to let it start."""
    RUNNING = "running"
    """Its task instances are being scheduled."""
    SUCCESS = "success"
    """Every leaf task ended in success or skipped."""
    FAILED = "failed"
    """At least one leaf task ended in failed or upstream_failed."""

    def __str__(self) -> str:
        return self.value


TI = TaskInstanceState

TI_FINISHED: frozenset[TaskInstanceState] = frozenset(
    {TI.SUCCESS, TI.FAILED, TI.UPSTREAM_FAILED, TI.SKIPPED, TI.REMOVED}
)
"""States from which nothing moves without a user clearing (→ none) or marking (→ success / failed) it."""

TI_ACTIVE: frozenset[TaskInstanceState] = frozenset({TI.QUEUED, TI.RUNNING})
"""States that hold an executor slot, a pool slot and count toward max_active_tasks."""

TI_TRANSITIONS: dict[TaskInstanceState, frozenset[TaskInstanceState]] = {
    # The scheduler decides: run it, or it can never run.
    # A user may mark it success or failed (API/UI "mark").
    # A mapped task's index past its new length is removed when the task is expanded again.
    TI.NONE: frozenset({TI.SCHEDULED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.SUCCESS, TI.FAILED, TI.REMOVED}),
    # Queued by the scheduler, or, for a task that starts in the triggerer (start_from_trigger), deferred by it
    # with no process; skipped by a branch that finished meanwhile;
    # back to none when a user clears it; a user may mark it success or failed.
    TI.SCHEDULED: frozenset(
        {TI.QUEUED, TI.DEFERRED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.NONE, TI.SUCCESS, TI.FAILED, TI.REMOVED}
    ),
    # A supervisor claims it; or the try never started (executor lost it → back
    # to scheduled; the supervisor could not start it → failed/up_for_retry).
    # A user may mark it success; marking its DAG run failed skips it. Removed when its task left the DAG
    # or its map index is past the mapped task's new length (Airflow's verify_integrity / revision).
    TI.QUEUED: frozenset({TI.RUNNING, TI.SCHEDULED, TI.FAILED, TI.UP_FOR_RETRY, TI.SUCCESS, TI.SKIPPED, TI.REMOVED}),
    # The supervisor (or zombie detection) records the outcome of the try (a sensor's unmet poke in reschedule
    # mode: up_for_reschedule); a user's mark success/failed changes the state and the supervisor stops the try;
    # removed as a queued one is (the supervisor then stops the try too).
    # A deferral (TaskDeferred): deferred.
    TI.RUNNING: frozenset(
        {TI.SUCCESS, TI.FAILED, TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE, TI.DEFERRED, TI.SKIPPED, TI.REMOVED}
    ),
    # Retry due → scheduled again; a user may fail it, mark it success or clear it;
    # marking its DAG run failed skips it.
    TI.UP_FOR_RETRY: frozenset({TI.SCHEDULED, TI.FAILED, TI.NONE, TI.SUCCESS, TI.SKIPPED, TI.REMOVED}),
    # Next poke due → scheduled again (same try_number); a user may clear it, mark it success or failed;
    # marking its DAG run failed skips it; a mapped index past its new length is removed.
    TI.UP_FOR_RESCHEDULE: frozenset({TI.SCHEDULED, TI.NONE, TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.REMOVED}),
    # Its trigger fired, failed or timed out → scheduled (same try_number, resuming in next_method); a user may
    # clear it, mark it success or failed; marking its DAG run failed (or its timeout) skips it.
    TI.DEFERRED: frozenset({TI.SCHEDULED, TI.NONE, TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.REMOVED}),
    # Finished states only move by a user: clearing (→ none) or marking (→ success / failed); or, for a
    # mapped task's index past its new length when the task is expanded again, → removed.
    TI.SUCCESS: frozenset({TI.NONE, TI.FAILED, TI.REMOVED}),
    TI.FAILED: frozenset({TI.NONE, TI.SUCCESS, TI.REMOVED}),
    TI.UPSTREAM_FAILED: frozenset({TI.NONE, TI.SUCCESS, TI.FAILED, TI.REMOVED}),
    TI.SKIPPED: frozenset({TI.NONE, TI.SUCCESS, TI.FAILED, TI.REMOVED}),
    # Cleared by a user (the next expansion decides it again).
    TI.REMOVED: frozenset({TI.NONE}),
}
"""For each task instance state, the states it may move to."""

RUN_TRANSITIONS: dict[DagRunState, frozenset[DagRunState]] = {
    # Started by the scheduler; a user may mark it success or failed before it starts.
    DagRunState.QUEUED: frozenset({DagRunState.RUNNING, DagRunState.FAILED, DagRunState.SUCCESS}),
    DagRunState.RUNNING: frozenset({DagRunState.SUCCESS, DagRunState.FAILED}),
    # A cleared run starts again; a user may mark a finished run the other way.
    DagRunState.SUCCESS: frozenset({DagRunState.QUEUED, DagRunState.FAILED}),
    DagRunState.FAILED: frozenset({DagRunState.QUEUED, DagRunState.SUCCESS}),
}
"""For each DAG run state, the states it may move to."""


class EndReason(str, Enum):
    """Why a try ended; recorded on its ``task_try`` row."""

    SUCCESS = "success"
    """The task returned normally."""
    FAILED = "failed"
    """The task raised an exception (or BashOperator exited non-zero)."""
    SKIPPED = "skipped"
    """The task asked to be skipped (SkipTask, or BashOperator's skip_on_exit_code)."""
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    """The supervisor killed the process tree for going over ``memory_limit``."""
    TIMEOUT = "timeout"
    """The supervisor killed the process tree after ``execution_timeout``."""
    KILLED = "killed"
    """The task process died from a signal nobody in headrace sent (see ``signal``)."""
    ZOMBIE = "zombie"
    """The try's supervisor vanished (host or process gone, heartbeat stopped)."""
    NOT_STARTED = "not_started"
    """The supervisor could not start the task process (e.g. the DAG file would not import)."""
    EXTERNALLY_SET = "externally_set"
    """A user (or zombie check) changed the task instance's state while the try ran; the supervisor stopped it."""
    LOST_RACE = "lost_race"
    """The try's own outcome came after the task instance had been moved on by another writer (a zombie
    check, a user); the task instance kept that decision and this row records the late outcome."""
    RESCHEDULED = "rescheduled"
    """A sensor in reschedule mode poked and its criteria were not met: the poke's process ended, the task
    instance waits (``up_for_reschedule``) for its next poke in the same try (see ``task_reschedule``)."""
    DEFERRED = "deferred"
    """The task deferred (``TaskDeferred``): its process ended, the task instance waits (``deferred``) for its
    trigger's event and resumes in the same try (the row is reopened then)."""
    DAGRUN_TIMEOUT = "dagrun_timeout"
    """The DAG run lasted longer than its DAG's ``dagrun_timeout``: the run failed, a running try was
    stopped (its task instance failed) and task instances that had not started were skipped."""

    def __str__(self) -> str:
        return self.value


def can_transition(current: TaskInstanceState, new: TaskInstanceState) -> bool:
    """Return whether a task instance may move from ``current`` to ``new``."""
    return new in TI_TRANSITIONS[current]


def can_transition_run(current: DagRunState, new: DagRunState) -> bool:
    """Return whether a DAG run may move from ``current`` to ``new``."""
    return new in RUN_TRANSITIONS[current]
