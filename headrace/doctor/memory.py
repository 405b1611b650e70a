"""Peak memory of tries per task, against the task's ``memory_limit`` and the machine.

Every finished try records ``peak_rss_bytes``: the highest RSS of its whole
process tree seen by the supervisor. Per ``(dag_id, task_id)``, over the tries
that ran in the window, the database returns the count, the maximum, the
nearest-rank p95 and how many tries ended ``memory_limit_exceeded``. The limit
is the one in the DAG's current serialized version (``dag.version_hash`` →
``dag_version.serialized["tasks"][task_id]["memory_limit"]``, bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import psutil
from sqlalchemy import and_, case, func, or_, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagVersion, TaskTry
from headrace.doctor.findings import Area, Finding, Severity, fmt_bytes, set_setting
from headrace.doctor.sql import percentiles
from headrace.states import EndReason

NEAR_LIMIT = 0.8
"""A task whose highest peak reaches this share of its limit gets a warning."""
MACHINE_SHARE = 0.25
"""A task without a limit whose highest peak reaches this share of the machine's memory gets a warning."""
MiB = 1 << 20


@dataclass(frozen=True)
class TaskMemory:
    """Peak RSS of one task's tries in the window (bytes)."""

    dag_id: str
    task_id: str
    tries: int
    """Tries with a recorded peak."""
    max_peak_bytes: int
    p95_peak_bytes: int
    exceeded: int
    """Tries that ended ``memory_limit_exceeded``."""
    memory_limit: int | None
    """The task's limit in its current DAG version, bytes (None: no limit, or the task is gone)."""


def suggest_limit(peak_bytes: float) -> int:
    """1.5 × ``peak_bytes``, rounded up to 64 MiB (256 MiB from 1 GiB on), in bytes."""
    target = peak_bytes * 1.5
    step = 256 * MiB if target >= 1 << 30 else 64 * MiB
    return int(-(-target // step) * step)


def limit_text(limit: int) -> str:
    """A limit as the string a DAG author writes: ``"768MiB"``."""
    return f"{limit // MiB}MiB"


def _current_limits(db: Database, dag_ids: set[str]) -> dict[tuple[str, str], int | None]:
    if not dag_ids:
        return {}
    limits: dict[tuple[str, str], int | None] = {}
    with db.read_session() as session:
        rows = session.execute(
            select(DagModel.dag_id, DagVersion.serialized)
            .join(
                DagVersion, and_(DagVersion.dag_id == DagModel.dag_id, DagVersion.version_hash == DagModel.version_hash)
            )
            .where(DagModel.dag_id.in_(sorted(dag_ids)))
        ).all()
    for dag_id, serialized in rows:
        for task_id, task in (serialized or {}).get("tasks", {}).items():
            limits[(dag_id, task_id)] = task.get("memory_limit")
    return limits


def measure_memory(db: Database, now: datetime, hours: float) -> tuple[list[TaskMemory], float | None]:
    """Per task: tries, max / p95 peak RSS and limit kills over the last ``hours`` hours; and the p95 peak over all tries."""
    since = now - timedelta(hours=hours)
    in_window = and_(TaskTry.start_date < now, or_(TaskTry.end_date.is_(None), TaskTry.end_date >= since))
    exceeded = func.sum(case((TaskTry.end_reason == EndReason.MEMORY_LIMIT_EXCEEDED.value, 1), else_=0))
    with db.read_session() as session:
        rows = session.execute(
            select(
                TaskTry.dag_id,
                TaskTry.task_id,
                func.count(TaskTry.peak_rss_bytes),
                func.max(TaskTry.peak_rss_bytes),
                exceeded,
            )
            .where(in_window)
            .group_by(TaskTry.dag_id, TaskTry.task_id)
        ).all()
        values = select(TaskTry.dag_id, TaskTry.task_id, TaskTry.peak_rss_bytes.label("v")).where(in_window)
        p95 = percentiles(session, values, [95], group_by=("dag_id", "task_id"))
        overall = percentiles(session, select(TaskTry.peak_rss_bytes.label("v")).where(in_window), [95])
    limits = _current_limits(db, {r[0] for r in rows})
    tasks = [
        TaskMemory(
            dag_id=dag_id,
            task_id=task_id,
            tries=int(n),
            max_peak_bytes=int(peak or 0),
            p95_peak_bytes=int(p95.get((dag_id, task_id), {}).get(95, 0)),
            exceeded=int(over or 0),
            memory_limit=limits.get((dag_id, task_id)),
        )
        for dag_id, task_id, n, peak, over in rows
        if n or over  # tries still running have no peak yet
    ]
    tasks.sort(key=lambda t: (-t.max_peak_bytes, t.dag_id, t.task_id))
    return tasks, overall.get((), {}).get(95)


def memory_findings(
    settings: Settings,
    tasks: list[TaskMemory],
    p95_all: float | None,
    hours: float,
    machine_bytes: int | None = None,
) -> list[Finding]:
    """Findings per task near/over its limit or big for the machine; and parallelism × p95 peak vs the machine."""
    total = machine_bytes or psutil.virtual_memory().total
    findings: list[Finding] = []
    for t in tasks:
        name = f"{t.dag_id}.{t.task_id}"
        figures: Mapping[str, object] = {
            "dag_id": t.dag_id,
            "task_id": t.task_id,
            "tries": t.tries,
            "max_peak_rss_bytes": t.max_peak_bytes,
            "p95_peak_rss_bytes": t.p95_peak_bytes,
            "memory_limit_bytes": t.memory_limit,
            "memory_limit_exceeded_tries": t.exceeded,
            "machine_memory_bytes": total,
        }
        suggested = suggest_limit(t.max_peak_bytes) if t.max_peak_bytes else None
        if t.exceeded:
            findings.append(
                Finding(
                    Area.MEMORY,
                    Severity.ERROR,
                    f"{name}: {t.exceeded} tr{'y' if t.exceeded == 1 else 'ies'} ended memory_limit_exceeded in "
                    f"{hours:g} h (limit {fmt_bytes(t.memory_limit)}, highest peak {fmt_bytes(t.max_peak_bytes)})",
                    dict(figures),
                    "make the task use less memory (process the data in chunks), or give it more: "
                    f'memory_limit="{limit_text(suggest_limit(max(t.max_peak_bytes, t.memory_limit or 0)))}"',
                )
            )
        elif t.memory_limit and t.max_peak_bytes >= NEAR_LIMIT * t.memory_limit:
            share = t.max_peak_bytes / t.memory_limit
            findings.append(
                Finding(
                    Area.MEMORY,
                    Severity.WARNING,
                    f"{name}: highest peak {fmt_bytes(t.max_peak_bytes)} is {share:.0%} of its memory_limit "
                    f"{fmt_bytes(t.memory_limit)} (p95 {fmt_bytes(t.p95_peak_bytes)})",
                    dict(figures),
                    f'raise it before tries get killed: memory_limit="{limit_text(suggested or 0)}"',
                )
            )
        elif t.memory_limit is None and t.max_peak_bytes >= MACHINE_SHARE * total:
            share = t.max_peak_bytes / total
            findings.append(
                Finding(
                    Area.MEMORY,
                    Severity.WARNING,
                    f"{name}: no memory_limit and its highest peak {fmt_bytes(t.max_peak_bytes)} is {share:.0%} of the "
                    f"machine's {fmt_bytes(total)}",
                    dict(figures),
                    f'give it a limit so one try cannot take the machine down: memory_limit="{limit_text(suggested or 0)}"',
                )
            )
    if tasks:
        top = tasks[0]
        findings.append(
            Finding(
                Area.MEMORY,
                Severity.OK,
                f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} ran in {hours:g} h; highest peak "
                f"{fmt_bytes(top.max_peak_bytes)} ({top.dag_id}.{top.task_id})",
                {
                    "tasks": len(tasks),
                    "machine_memory_bytes": total,
                    "top": [
                        {
                            "dag_id": t.dag_id,
                            "task_id": t.task_id,
                            "max_peak_rss_bytes": t.max_peak_bytes,
                            "memory_limit_bytes": t.memory_limit,
                        }
                        for t in tasks[:5]
                    ],
                },
            )
        )
    else:
        findings.append(
            Finding(
                Area.MEMORY,
                Severity.INFO,
                f"no try recorded a peak in the last {hours:g} h",
                {"tasks": 0, "machine_memory_bytes": total},
            )
        )
    if p95_all:
        parallelism = settings.parallelism
        need = parallelism * p95_all
        figures2 = {
            "parallelism": parallelism,
            "p95_peak_rss_bytes": int(p95_all),
            "parallelism_times_p95_bytes": int(need),
            "machine_memory_bytes": total,
        }
        if need > total:
            fit = max(1, int(total * 0.8 // p95_all))
            findings.append(
                Finding(
                    Area.MEMORY,
                    Severity.WARNING,
                    f"parallelism {parallelism} × p95 peak {fmt_bytes(p95_all)} = {fmt_bytes(need)}, more than the "
                    f"machine's {fmt_bytes(total)}: the machine could be overcommitted",
                    figures2,
                    set_setting("core", "parallelism", fit) + ", or set memory_limit on the big tasks",
                )
            )
        else:
            findings.append(
                Finding(
                    Area.MEMORY,
                    Severity.OK,
                    f"parallelism {parallelism} × p95 peak {fmt_bytes(p95_all)} = {fmt_bytes(need)} fits in "
                    f"{fmt_bytes(total)}",
                    figures2,
                )
            )
    return findings
