from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headrace.states import (
    RUN_TRANSITIONS,
    TI_FINISHED,
    TI_TRANSITIONS,
    DagRunState,
    TaskInstanceState,
    can_transition,
)

TI = TaskInstanceState


def test_every_state_has_a_row() -> None:
    assert set(TI_TRANSITIONS) == set(TaskInstanceState)
    assert set(RUN_TRANSITIONS) == set(DagRunState)


def test_states_are_their_db_strings() -> None:
    assert TI.UP_FOR_RETRY == "up_for_retry"
    assert TI("none") is TI.NONE
    assert str(TI.SUCCESS) == "success"


@given(st.sampled_from(list(TI)), st.sampled_from(list(TI)))
def test_finished_states_only_move_by_clearing(current: TaskInstanceState, new: TaskInstanceState) -> None:
    # Only a user moves a finished task instance: clear (→ none) or mark (→ success / failed); or the
    # scheduler removes a mapped task's index past its new length when it expands the task again.
    if current in TI_FINISHED and can_transition(current, new):
        assert new in (TI.NONE, TI.SUCCESS, TI.FAILED, TI.REMOVED)
    if current is TI.REMOVED:
        assert not can_transition(current, new) or new is TI.NONE


@given(st.lists(st.sampled_from(list(TI)), min_size=1, max_size=30))
def test_any_legal_path_to_running_passes_through_queued(path: list[TaskInstanceState]) -> None:
    # Walk only the legal moves of the sampled path, starting at none.
    state = TI.NONE
    visited = [state]
    for nxt in path:
        if can_transition(state, nxt):
            state = nxt
            visited.append(state)
    for i, s in enumerate(visited):
        if s is TI.RUNNING:
            assert visited[i - 1] is TI.QUEUED


def test_no_state_moves_to_itself() -> None:
    for state, targets in TI_TRANSITIONS.items():
        assert state not in targets
    for run_state, run_targets in RUN_TRANSITIONS.items():
        assert run_state not in run_targets


def test_every_state_is_reachable_from_none() -> None:
    seen = {TI.NONE}
    frontier = [TI.NONE]
    while frontier:
        for nxt in TI_TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(TI)


def test_a_sensor_waits_for_its_next_poke_without_a_slot() -> None:
    from headrace.states import TI_ACTIVE

    assert [s for s in TI if TI.UP_FOR_RESCHEDULE in TI_TRANSITIONS[s]] == [TI.RUNNING]
    assert can_transition(TI.UP_FOR_RESCHEDULE, TI.SCHEDULED)
    assert not can_transition(TI.UP_FOR_RESCHEDULE, TI.RUNNING)  # a poke is queued like any try
    assert TI.UP_FOR_RESCHEDULE not in TI_ACTIVE and not TI.UP_FOR_RESCHEDULE.is_finished
