"""How a try's ending maps to the task instance's next state, and how that outcome is written.

:func:`next_state` is one rule used by both processes.

The task process uses it to pick which callback to run (``on_retry_callback``
or ``on_failure_callback``); the supervisor uses it to write the state. Both
must agree, so the rule lives in one place.

:mod:`.recording` writes it (the task process, which imports this module,
never touches the database).
"""

from __future__ import annotations

from headrace.states import TaskInstanceState

TI = TaskInstanceState


def next_state(outcome: str, try_number: int, max_tries: int) -> TaskInstanceState:
    """The state a try's ending gives its task instance.

    ``outcome``: ``success``, ``skipped``, ``fail_no_retry`` (FailTask: never
    retried), or ``failed`` / ``retry`` (an exception, RetryTask, a kill, a
    timeout, a memory kill: retried while ``try_number <= max_tries``, where
    ``max_tries`` is the task's ``retries``, as in Airflow), or ``reschedule`` (a sensor's unmet poke in
    reschedule mode: ``up_for_reschedule``, the same try goes on at its next poke), or ``deferred`` (the task
    handed its wait to a trigger: ``deferred``, the same try resumes when it fires).
    Raises ``ValueError`` for an unknown outcome.
    """
    if outcome == "success":
        return TI.SUCCESS
    if outcome == "skipped":
        return TI.SKIPPED
    if outcome == "fail_no_retry":
        return TI.FAILED
    if outcome == "reschedule":
        return TI.UP_FOR_RESCHEDULE
    if outcome == "deferred":
        return TI.DEFERRED
    if outcome in ("failed", "retry"):
        return TI.UP_FOR_RETRY if try_number <= max_tries else TI.FAILED
    raise ValueError(f"unknown try outcome {outcome!r}")
