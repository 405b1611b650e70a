"""Slots: the sweep line's figures exactly, from pure intervals and from task_try rows on both databases."""

from __future__ import annotations

import random

import pytest

from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.db.models import Pool
from headrace.doctor.concurrency import Interval, measure_usage, slot_findings, sweep
from headrace.doctor.findings import Area, Severity
from tests.doctor.rows import NOW, Runs, at


def test_three_overlapping_tries_peak_three() -> None:
    # 0-10 s: 1 try; 10-20: 2; 20-30: 3; 30-40: 2; 40-100: 0   (window 100 s)
    p = sweep([Interval(0, 40), Interval(10, 40), Interval(20, 30)], 0, 100)
    assert p.peak == 3
    assert p.seconds_at == {1: 10, 2: 20, 3: 10, 0: 60}
    assert p.busy_seconds == 40
    assert p.mean == pytest.approx((10 + 40 + 30) / 100)
    assert p.p95 == 3  # only 90 s of 100 are at <= 2
    assert p.p95_busy == 3
    assert p.intervals == 3


def test_time_weighted_p95_ignores_a_short_spike() -> None:
    # 2 tries for 99 s, a third for 1 s of it: the p95 over time stays 2, the peak is 3
    p = sweep([Interval(0, 99), Interval(0, 99), Interval(50, 51)], 0, 99)
    assert (p.peak, p.p95, p.p95_busy) == (3, 2, 2)


def test_back_to_back_tries_do_not_overlap_and_clipping() -> None:
    p = sweep([Interval(0, 10), Interval(10, 20), Interval(-50, 5), Interval(95, 500), Interval(200, 300)], 0, 100)
    assert p.peak == 2  # only (-50,5) clipped to (0,5) overlaps (0,10)
    assert p.intervals == 4  # (200, 300) is outside the window
    assert p.busy_seconds == 25
    assert p.seconds_at[2] == 5
    with pytest.raises(ValueError):
        sweep([], 10, 10)


def test_weights_count_pool_slots() -> None:
    p = sweep([Interval(0, 10, 2), Interval(5, 10, 3)], 0, 10)
    assert p.peak == 5 and p.seconds_at == {2: 5, 5: 5}


def test_usage_from_task_try_rows(db: Database) -> None:
    runs = Runs(db, "etl")
    # three overlapping tries in the last hour, one still running, one long finished (outside 1 h)
    runs.add_try("a", at(50), at(20))
    runs.add_try("b", at(40), at(30), pool="big", pool_slots=2)
    runs.add_try("c", at(35), None, state="running")
    runs.add_try("old", at(300), at(200))
    with db.session() as session:
        session.add(Pool(name="big", slots=2))
    usage = measure_usage(db, NOW, hours=1)
    p = usage.executor
    assert p.intervals == 3
    assert p.peak == 3
    assert p.seconds_at[3] == pytest.approx(5 * 60)  # 35..30 minutes ago
    assert p.busy_seconds == pytest.approx(50 * 60)
    assert usage.pools["big"].peak == 2 and usage.pools["default_pool"].peak == 2
    assert usage.pool_slots["big"] == 2

    settings_like = _settings(db, parallelism=8)
    findings = slot_findings(settings_like, usage, 1, cpus=2)
    cpu = next(f for f in findings if "CPUs this process may use" in f.title)
    assert cpu.severity is Severity.WARNING and "HEADRACE__CORE__PARALLELISM=2" in cpu.suggestion
    idle = next(f for f in findings if "never used" in f.title)
    assert idle.severity is Severity.INFO
    assert "parallelism 8, at most 3 tries at once in 1 h: 5 slots never used" in idle.title
    assert idle.figures["peak_concurrent_tries"] == 3 and idle.figures["slots_never_used"] == 5
    big = next(f for f in findings if "'big'" in f.title)
    assert big.figures["slots"] == 2 and "all 2 slots in use" in big.title
    assert all(f.area is Area.SLOTS for f in findings)


def test_saturated_executor_is_a_warning(db: Database) -> None:
    runs = Runs(db, "busy")
    for task in ("a", "b"):
        runs.add_try(task, at(60), at(0))
    usage = measure_usage(db, NOW, hours=2)
    findings = slot_findings(_settings(db, parallelism=2), usage, 2, cpus=4)
    full = next(f for f in findings if "had to wait for a slot" in f.title)
    assert full.severity is Severity.WARNING
    assert full.figures["share_of_busy_time_full"] == 1.0
    assert "HEADRACE__CORE__PARALLELISM=4" in full.suggestion


def _settings(db: Database, parallelism: int) -> Settings:
    return load_settings(
        {
            "HEADRACE_HOME": "/nonexistent",
            "HEADRACE__DATABASE__URL": db.url,
            "HEADRACE__CORE__PARALLELISM": str(parallelism),
        }
    )


def test_usage_from_rows_matches_the_sweep_of_the_same_intervals(db: Database) -> None:
    rnd = random.Random(7)
    runs = Runs(db, "random")
    intervals: list[Interval] = []
    pooled: list[Interval] = []
    for i in range(60):
        start = rnd.randrange(0, 150)  # minutes ago, some before the 2 h window
        length = rnd.choice([0, 1, 3, 10, 30])
        slots = rnd.choice([1, 2])
        end = None if i % 17 == 0 else start - length
        state = "running" if end is None else "success"
        runs.add_try(
            f"t{i}",
            at(start),
            at(end) if end is not None else None,
            state=state,
            pool="p" if slots == 2 else "default_pool",
            pool_slots=slots,
        )
        iv = Interval(at(start).timestamp(), (at(end) if end is not None else NOW).timestamp(), slots)
        intervals.append(Interval(iv.start, iv.end))
        if slots == 2:
            pooled.append(iv)
    usage = measure_usage(db, NOW, hours=2)
    w0, w1 = NOW.timestamp() - 7200, NOW.timestamp()
    for got, want in ((usage.executor, sweep(intervals, w0, w1)), (usage.pools["p"], sweep(pooled, w0, w1))):
        assert (got.peak, got.p95, got.p95_busy, got.intervals) == (want.peak, want.p95, want.p95_busy, want.intervals)
        assert got.mean == pytest.approx(want.mean, abs=1e-6)
        assert got.busy_seconds == pytest.approx(want.busy_seconds, abs=1e-3)
        assert got.seconds_at.keys() == want.seconds_at.keys()
