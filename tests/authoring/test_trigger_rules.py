from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headrace.authoring.trigger_rules import (
    WAITS_FOR_ALL,
    Decision,
    TriggerRule,
    UpstreamCounts,
    evaluate,
    evaluate_setups,
)

R, W, S, U = Decision.RUN, Decision.WAIT, Decision.SKIP, Decision.UPSTREAM_FAILED


def counts(
    total: int, s: int = 0, f: int = 0, uf: int = 0, sk: int = 0, setups: int = 0, ss: int = 0, ssk: int = 0
) -> UpstreamCounts:
    return UpstreamCounts(
        total=total,
        success=s,
        failed=f,
        upstream_failed=uf,
        skipped=sk,
        setups=setups,
        setup_success=ss,
        setup_skipped=ssk,
    )


# (rule, counts, expected): total=3 unless said otherwise.
TABLE = [
    # all_success
    ("all_success", counts(3, s=3), R),
    ("all_success", counts(3, s=2), W),
    ("all_success", counts(3, s=1, f=1), U),
    ("all_success", counts(3, uf=1), U),
    ("all_success", counts(3, s=2, sk=1), S),
    ("all_success", counts(3, sk=1), S),
    ("all_success", counts(3, sk=1, f=1), U),
    # all_failed
    ("all_failed", counts(3, f=3), R),
    ("all_failed", counts(3, f=2, uf=1), R),
    ("all_failed", counts(3, f=2), W),
    ("all_failed", counts(3, f=1, s=1), S),
    ("all_failed", counts(3, sk=1), S),
    # all_done
    ("all_done", counts(3, s=1, f=1, sk=1), R),
    ("all_done", counts(3, uf=3), R),
    ("all_done", counts(3, s=2), W),
    # all_done_setup_success (a teardown's rule): all done, and one upstream setup succeeded if it has any
    ("all_done_setup_success", counts(3, s=1, f=2), R),
    ("all_done_setup_success", counts(3, f=3), R),  # no upstream setup: as all_done
    ("all_done_setup_success", counts(3, s=1, f=1, setups=1, ss=1), W),
    ("all_done_setup_success", counts(3, s=1, f=2, setups=2, ss=1), R),
    ("all_done_setup_success", counts(3, f=3, setups=2), U),
    ("all_done_setup_success", counts(3, sk=3, setups=2, ssk=2), S),
    ("all_done_setup_success", counts(3, f=1, sk=2, setups=2, ssk=1), U),
    # all_done_min_one_success: a skipped upstream skips it at once; else all done with one success
    ("all_done_min_one_success", counts(3, s=1, f=2), R),
    ("all_done_min_one_success", counts(3, s=1, f=1), W),
    ("all_done_min_one_success", counts(3, s=1, sk=1), S),
    ("all_done_min_one_success", counts(3, f=2, uf=1), U),
    # all_skipped
    ("all_skipped", counts(3, sk=3), R),
    ("all_skipped", counts(3, sk=2), W),
    ("all_skipped", counts(3, sk=2, s=1), S),
    ("all_skipped", counts(3, f=1), S),
    ("all_skipped", counts(3, uf=1), S),
    # one_success
    ("one_success", counts(3, s=1), R),
    ("one_success", counts(3, s=1, f=2), R),
    ("one_success", counts(3, f=1), W),
    ("one_success", counts(3, f=1, sk=2), U),
    ("one_success", counts(3, uf=3), U),
    ("one_success", counts(3, sk=3), S),
    # one_failed
    ("one_failed", counts(3, f=1), R),
    ("one_failed", counts(3, uf=1), R),
    ("one_failed", counts(3, s=2), W),
    ("one_failed", counts(3, s=2, sk=1), S),
    # one_done
    ("one_done", counts(3, s=1), R),
    ("one_done", counts(3, f=1), R),
    ("one_done", counts(3, sk=1), W),
    ("one_done", counts(3, sk=2, uf=1), S),
    # none_failed
    ("none_failed", counts(3, s=1, sk=2), R),
    ("none_failed", counts(3, sk=3), R),
    ("none_failed", counts(3, s=2), W),
    ("none_failed", counts(3, f=1), U),
    ("none_failed", counts(3, uf=1, s=2), U),
    # none_failed_min_one_success
    ("none_failed_min_one_success", counts(3, s=1, sk=2), R),
    ("none_failed_min_one_success", counts(3, sk=3), S),
    ("none_failed_min_one_success", counts(3, sk=2), W),
    ("none_failed_min_one_success", counts(3, s=1), W),
    ("none_failed_min_one_success", counts(3, f=1), U),
    ("none_failed_min_one_success", counts(3, uf=1, sk=2), U),
    # none_skipped
    ("none_skipped", counts(3, s=1, f=1, uf=1), R),
    ("none_skipped", counts(3, s=2), W),
    ("none_skipped", counts(3, s=1, sk=1), S),
    # always
    ("always", counts(3), R),
    ("always", counts(3, f=3), R),
]


@pytest.mark.parametrize(("rule", "upstream", "expected"), TABLE)
def test_trigger_rule_table(rule: str, upstream: UpstreamCounts, expected: Decision) -> None:
    assert evaluate(rule, upstream) is expected


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [(counts(2, s=2), R), (counts(2, s=1), W), (counts(2, s=1, f=1), U), (counts(2, uf=1), U), (counts(2, sk=1), S)],
)
def test_indirect_setups_must_all_succeed(upstream: UpstreamCounts, expected: Decision) -> None:
    """Airflow's setup constraint: a failed indirect setup fails the task, a skipped one skips it, else it waits."""
    assert evaluate_setups(upstream) is expected


def test_every_rule_is_covered_by_the_table() -> None:
    assert {TriggerRule(r) for r, _, _ in TABLE} == set(TriggerRule)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_no_upstream_always_runs(rule: TriggerRule) -> None:
    assert evaluate(rule, UpstreamCounts(total=0)) is Decision.RUN


def test_rule_values_are_airflows() -> None:
    assert [r.value for r in TriggerRule] == [
        "all_success",
        "all_failed",
        "all_done",
        "all_done_setup_success",
        "all_done_min_one_success",
        "all_skipped",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "always",
    ]
    assert TriggerRule.ALL_SUCCESS == "all_success"


def test_done_is_computed_and_checked() -> None:
    assert counts(4, s=1, f=1).done == 2
    with pytest.raises(ValueError):
        UpstreamCounts(total=2, success=1, done=2)
    with pytest.raises(ValueError):
        UpstreamCounts(total=1, success=2)
    with pytest.raises(ValueError):
        evaluate("sometimes", counts(1))


@st.composite
def upstream_counts(draw: st.DrawFn) -> UpstreamCounts:
    total = draw(st.integers(min_value=1, max_value=8))
    states = draw(st.lists(st.sampled_from(["s", "f", "uf", "sk", "running"]), min_size=total, max_size=total))
    return counts(total, s=states.count("s"), f=states.count("f"), uf=states.count("uf"), sk=states.count("sk"))


@given(rule=st.sampled_from(list(TriggerRule)), upstream=upstream_counts())
def test_never_runs_while_it_must_wait_and_never_waits_when_all_done(
    rule: TriggerRule, upstream: UpstreamCounts
) -> None:
    decision = evaluate(rule, upstream)
    if rule in WAITS_FOR_ALL and not upstream.all_done:
        assert decision is not Decision.RUN
    if upstream.all_done:
        assert decision is not Decision.WAIT


@given(rule=st.sampled_from(list(TriggerRule)), upstream=upstream_counts())
def test_decisions_other_than_wait_are_final(rule: TriggerRule, upstream: UpstreamCounts) -> None:
    """Once decided (not WAIT), finishing more upstream tasks successfully never changes a SKIP/UPSTREAM_FAILED."""
    decision = evaluate(rule, upstream)
    pending = upstream.total - upstream.done
    if decision in (Decision.SKIP, Decision.UPSTREAM_FAILED) and pending:
        later = counts(
            upstream.total,
            s=upstream.success + pending,
            f=upstream.failed,
            uf=upstream.upstream_failed,
            sk=upstream.skipped,
        )
        assert evaluate(rule, later) is decision
