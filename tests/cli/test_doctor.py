"""``headrace doctor`` in a subprocess on a migrated HEADRACE_HOME: JSON output and the exit code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.config import Settings
from headrace.db.engine import Database
from tests.doctor.rows import MiB, Runs, add_dag

Cli = Any  # the `cli` fixture in conftest.py: cli(*args) -> CliResult(code, out, err)


def _findings(out: str) -> list[dict[str, Any]]:
    findings = json.loads(out)
    assert isinstance(findings, list) and findings
    for f in findings:
        assert set(f) == {"area", "severity", "title", "figures", "suggestion"}
        assert f["severity"] in {"ok", "info", "warning", "error"}
    return findings


def test_doctor_json_then_error_exit_code(cli: Cli, settings: Settings) -> None:
    r = cli("db", "migrate")
    assert r.code == 0, r.err
    r = cli("doctor", "--json")
    assert r.code == 0, r.err
    findings = _findings(r.out)
    areas = [f["area"] for f in findings]
    assert areas[0] == "executor slots" and areas[-1] == "triggerer and deferrals"
    assert {"processes", "running tries", "memory", "scheduler and database", "DAG files"} <= set(areas)
    assert findings[-1]["severity"] == "ok" and findings[-1]["figures"]["triggers"] == 0
    cpu = findings[0]
    assert cpu["figures"]["parallelism"] == 4  # HEADRACE__CORE__PARALLELISM from the cli fixture

    db = Database(settings.database_url)
    try:
        add_dag(db, "hungry", {"load": 64 * MiB})
        now = datetime.now(UTC)
        runs = Runs(db, "hungry")
        runs.add_try("load", now - timedelta(minutes=10), now - timedelta(minutes=9), peak=40 * MiB)
        runs.add_try(
            "load",
            now - timedelta(minutes=5),
            now - timedelta(minutes=4),
            state="failed",
            peak=65 * MiB,
            end_reason="memory_limit_exceeded",
        )
    finally:
        db.dispose()

    r = cli("doctor", "--json", "--hours", "1")
    assert r.code == 1, r.err
    findings = _findings(r.out)
    [error] = [f for f in findings if f["severity"] == "error"]
    assert error["area"] == "memory" and "hungry.load" in error["title"]
    assert error["figures"]["memory_limit_exceeded_tries"] == 1
    assert error["figures"]["memory_limit_bytes"] == 64 * MiB
    usage = next(f for f in findings if "never used" in f["title"])
    assert usage["figures"]["peak_concurrent_tries"] == 1 and usage["figures"]["slots_never_used"] == 3

    r = cli("doctor", "--hours", "1")  # the table
    assert r.code == 1
    for heading in ("executor slots", "processes", "memory", "DAG files"):
        assert heading in r.out
    assert "memory_limit_exceeded" in r.out
