"""``watch.classify``: how a try ended, from the wait code, the task's last report and the supervisor's kill."""

from __future__ import annotations

from headrace.states import EndReason
from headrace.supervisor.protocol import TaskDone
from headrace.supervisor.watch import _Kill, classify

USAGE = {"peak_rss_bytes": 1024, "cpu_seconds": 0.5}


def test_the_tasks_report_decides_when_nobody_killed_it() -> None:
    ok = classify(0, TaskDone(outcome="success"), _Kill(), **USAGE)
    assert (ok.outcome, ok.end_reason, ok.exit_code, ok.signal, ok.peak_rss_bytes) == (
        "success",
        EndReason.SUCCESS,
        0,
        None,
        1024,
    )
    skipped = classify(0, TaskDone(outcome="skipped"), _Kill(), **USAGE)
    assert skipped.end_reason is EndReason.SKIPPED
    retry = classify(1, TaskDone(outcome="retry", error="boom", retry_delay=3.0), _Kill(), **USAGE)
    assert (retry.end_reason, retry.error, retry.retry_delay, retry.exit_code) == (EndReason.FAILED, "boom", 3.0, 1)
    not_started = classify(1, TaskDone(outcome="failed", error="import", started=False), _Kill(), **USAGE)
    assert not_started.end_reason is EndReason.NOT_STARTED


def test_a_supervisor_kill_wins_over_the_report() -> None:
    kill = _Kill(reason=EndReason.MEMORY_LIMIT_EXCEEDED, error="memory_limit 1.0 MiB exceeded")
    result = classify(-9, TaskDone(outcome="success"), kill, **USAGE)
    assert (result.outcome, result.end_reason, result.signal, result.exit_code) == (
        "failed",
        EndReason.MEMORY_LIMIT_EXCEEDED,
        9,
        None,
    )
    assert result.error == "memory_limit 1.0 MiB exceeded"


def test_a_stop_records_sigterm_and_an_external_state_is_passed_on() -> None:
    stopped = classify(-9, None, _Kill(reason=EndReason.KILLED, error="told to stop"), **USAGE)
    assert (stopped.end_reason, stopped.signal) == (EndReason.KILLED, 15)
    external = classify(
        143, None, _Kill(reason=EndReason.EXTERNALLY_SET, error="set", external_state="success"), **USAGE
    )
    assert (external.end_reason, external.external_state, external.exit_code) == (
        EndReason.EXTERNALLY_SET,
        "success",
        143,
    )


def test_signal_or_silent_exit_without_a_report() -> None:
    segv = classify(-11, None, _Kill(), **USAGE)
    assert (segv.end_reason, segv.signal, segv.error) == (
        EndReason.KILLED,
        11,
        "task process killed by signal SIGSEGV (11)",
    )
    silent = classify(3, None, _Kill(), **USAGE)
    assert (silent.end_reason, silent.exit_code) == (EndReason.FAILED, 3)
    assert silent.error == "task process exited with code 3 without reporting an outcome"
