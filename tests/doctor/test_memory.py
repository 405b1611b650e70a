"""Memory: per-task peaks against the current DAG version's memory_limit and against the machine."""

from __future__ import annotations

from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.doctor.findings import Severity
from headrace.doctor.memory import measure_memory, memory_findings, suggest_limit
from tests.doctor.rows import NOW, MiB, Runs, add_dag, at

GiB = 1 << 30


def test_suggested_limit_is_one_and_a_half_peaks_rounded_up() -> None:
    assert suggest_limit(100 * MiB) == 192 * MiB  # 150 MiB → next 64 MiB
    assert suggest_limit(10 * GiB) == 15 * GiB
    assert suggest_limit(700 * MiB) == 1280 * MiB  # 1050 MiB ≥ 1 GiB → 256 MiB steps


def test_peaks_against_limits_and_machine(db: Database, settings: Settings) -> None:
    add_dag(db, "mem", {"near": 100 * MiB, "killed": 100 * MiB, "small": 1 * GiB, "hog": None})
    runs = Runs(db, "mem")
    for i in range(1, 21):  # peaks 1..20 MiB, then one at 85 MiB: max 85, p95 (rank 20 of 21) 20 MiB
        runs.add_try("near", at(30 + i), at(29 + i), peak=i * MiB)
    runs.add_try("near", at(10), at(9), peak=85 * MiB)
    runs.add_try("killed", at(8), at(7), peak=101 * MiB, state="failed", end_reason="memory_limit_exceeded")
    runs.add_try("killed", at(6), at(5), peak=60 * MiB)
    runs.add_try("small", at(6), at(5), peak=10 * MiB)
    runs.add_try("hog", at(4), at(3), peak=10 * GiB)
    runs.add_try("hog", at(60 * 30), at(60 * 29), peak=20 * GiB)  # 29 h ago: outside the window

    tasks, p95_all = measure_memory(db, NOW, hours=24)
    by_task = {t.task_id: t for t in tasks}
    near = by_task["near"]
    assert (near.tries, near.max_peak_bytes, near.p95_peak_bytes, near.memory_limit) == (
        21,
        85 * MiB,
        20 * MiB,
        100 * MiB,
    )
    assert by_task["killed"].exceeded == 1 and by_task["near"].exceeded == 0
    assert by_task["hog"].max_peak_bytes == 10 * GiB and by_task["hog"].memory_limit is None
    assert tasks[0].task_id == "hog"  # biggest first
    assert p95_all == 101 * MiB  # 25 peaks in the window: rank ceil(0.95 × 25) = 24 is 101 MiB (below 10 GiB)

    findings = memory_findings(settings, tasks, p95_all, 24, machine_bytes=16 * GiB)
    by_title = {f.figures.get("task_id"): f for f in findings if f.figures.get("task_id")}

    assert by_title["killed"].severity is Severity.ERROR
    assert "1 try ended memory_limit_exceeded in 24 h" in by_title["killed"].title
    assert 'memory_limit="' in by_title["killed"].suggestion

    assert by_title["near"].severity is Severity.WARNING
    assert "85.0 MiB is 85% of its memory_limit 100.0 MiB" in by_title["near"].title
    assert 'memory_limit="128MiB"' in by_title["near"].suggestion

    assert by_title["hog"].severity is Severity.WARNING
    assert "no memory_limit" in by_title["hog"].title and "62%" in by_title["hog"].title
    assert 'memory_limit="15360MiB"' in by_title["hog"].suggestion

    assert "small" not in by_title  # 10 MiB of 1 GiB: nothing to say


def test_parallelism_times_p95_over_machine_memory(db: Database, settings: Settings) -> None:
    runs = Runs(db, "wide")
    for i in range(10):
        runs.add_try(f"t{i}", at(10), at(9), peak=3 * GiB)
    tasks, p95_all = measure_memory(db, NOW, hours=1)
    many = load_settings(
        {"HEADRACE_HOME": str(settings.home), "HEADRACE__DATABASE__URL": db.url, "HEADRACE__CORE__PARALLELISM": "8"}
    )
    findings = memory_findings(many, tasks, p95_all, 1, machine_bytes=16 * GiB)
    over = next(f for f in findings if "overcommitted" in f.title)
    assert over.severity is Severity.WARNING
    assert over.figures["parallelism_times_p95_bytes"] == 24 * GiB
    assert "HEADRACE__CORE__PARALLELISM=4" in over.suggestion  # 80 % of 16 GiB / 3 GiB
    few = load_settings(
        {"HEADRACE_HOME": str(settings.home), "HEADRACE__DATABASE__URL": db.url, "HEADRACE__CORE__PARALLELISM": "4"}
    )
    fits = [f for f in memory_findings(few, tasks, p95_all, 1, machine_bytes=16 * GiB) if "fits in" in f.title]
    assert len(fits) == 1 and fits[0].severity is Severity.OK
