"""``headrace doctor``: answers operators' questions from measurements, each finding with a suggestion.

Areas (see ``docs/doctor.md`` for how each figure is measured):

* executor slots — ``core.parallelism`` vs CPUs and vs the concurrency tries
  really used in the last N hours (sweep line: peak, time-weighted p95, mean),
  and each pool's slots vs its peak;
* processes — every headrace process alive on this host and why (scheduler
  job, fork server, supervisor / task process of a try), anything unexplained;
* running tries — recorded supervisor / task pids (with start times) that are
  not alive or now belong to another process;
* memory — per task max / p95 peak RSS vs its ``memory_limit`` and the machine;
* scheduler and database — heartbeat age, DB latency now, scheduling delay;
* DAG files — slowest to parse vs ``core.dagbag_import_timeout``, import errors;
* triggerer — triggers waiting with no live triggerer, event-loop lag, the last trigger that blocked it.

This package has no CLI code: :func:`diagnose` returns findings; the command is
``headrace.cli.doctor``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.doctor.concurrency import measure_usage, slot_findings
from headrace.doctor.containment import containment_findings
from headrace.doctor.findings import Area, Finding, Severity, worst
from headrace.doctor.latency import scheduler_findings
from headrace.doctor.memory import measure_memory, memory_findings
from headrace.doctor.parsing import parse_findings
from headrace.doctor.processes import load_running, process_findings, try_findings
from headrace.doctor.triggerer import triggerer_findings

__all__ = ["Area", "Finding", "Severity", "diagnose", "worst"]


def diagnose(settings: Settings, db: Database, *, hours: float = 24.0, now: datetime | None = None) -> list[Finding]:
    """Measure everything and return the findings, grouped by area in :class:`Area` order.

    ``hours``: the look-back window for usage, memory and scheduling delay
    (must be > 0, else ``ValueError``). ``now`` defaults to the current UTC time.
    Database errors propagate (``sqlalchemy.exc.OperationalError`` …).
    """
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    now = now or datetime.now(UTC)
    findings: list[Finding] = []
    findings += slot_findings(settings, measure_usage(db, now, hours), hours)
    tries, jobs = load_running(db)
    findings += process_findings(settings, tries, jobs, now)
    findings += containment_findings(settings)
    findings += try_findings(settings, tries, now)
    tasks, p95_all = measure_memory(db, now, hours)
    findings += memory_findings(settings, tasks, p95_all, hours)
    findings += scheduler_findings(settings, db, now, hours)
    findings += parse_findings(settings, db)
    findings += triggerer_findings(settings, db, now, hours)
    order = list(Area)
    return sorted(findings, key=lambda f: order.index(f.area))
