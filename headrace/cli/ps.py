"""``headrace ps``: the running tries, their recorded process identity against the live one.

For each task instance in ``running`` state it shows the latest try's host,
recorded pid and process start time, and what is really there now: whether
that pid is alive *and* is the same process (same start time), its process
tree's RSS and CPU. A recorded pid that is gone, or that now belongs to
another process (pid reuse), is flagged — the mismatch Airflow operators
report in the seeds.
"""

from __future__ import annotations

import socket

import psutil
import typer
from rich.table import Table
from sqlalchemy import select

from headrace.cli.common import app_state, console, fmt_bytes, fmt_time
from headrace.db.models import TaskInstance, TaskTry
from headrace.supervisor.identity import ProcessIdentity


def _tree_usage(pid: int) -> tuple[int, float]:
    """RSS bytes and CPU seconds of ``pid`` and its descendants (0, 0.0 if gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0.0
    rss, cpu = 0, 0.0
    for proc in procs:
        try:
            rss += proc.memory_info().rss
            times = proc.cpu_times()
            cpu += times.user + times.system
        except psutil.Error:
            continue
    return rss, cpu


def _verdict(identity: ProcessIdentity | None) -> str:
    if identity is None:
        return "[yellow]not started yet[/]"
    if not identity.is_local():
        return f"[dim]on {identity.host}[/]"
    if identity.is_alive():
        return "[green]ok[/]"
    try:
        psutil.Process(identity.pid)
    except psutil.NoSuchProcess:
        return "[red]MISMATCH: pid gone[/]"
    return "[red]MISMATCH: pid reused by another process[/]"


def ps(ctx: typer.Context) -> None:
    """List running tries: recorded vs live pid, RSS and CPU; flag any mismatch."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        rows = session.execute(
            select(TaskInstance, TaskTry)
            .outerjoin(
                TaskTry,
                (TaskTry.task_instance_id == TaskInstance.id) & (TaskTry.try_number == TaskInstance.try_number),
            )
            .where(TaskInstance.state == "running")
            .order_by(TaskInstance.start_date)
        ).all()
    table = Table(title=f"running tries ({len(rows)}) — this host: {socket.gethostname()}")
    for column in (
        "dag_id",
        "run_id",
        "task_id",
        "try",
        "host",
        "pid",
        "supervisor",
        "live RSS",
        "CPU s",
        "started",
        "check",
    ):
        table.add_column(column, overflow="fold")
    mismatches = 0
    for ti, tt in rows:
        task_id_, sup_id = None, None
        if tt is not None:
            sup_id = ProcessIdentity(tt.hostname, tt.supervisor_pid, tt.supervisor_start_time)
            if tt.pid is not None and tt.process_start_time is not None:
                task_id_ = ProcessIdentity(tt.hostname, tt.pid, tt.process_start_time)
        verdict = _verdict(task_id_)
        sup_verdict = _verdict(sup_id)
        mismatches += "MISMATCH" in verdict or "MISMATCH" in sup_verdict
        rss, cpu = (
            _tree_usage(task_id_.pid) if (task_id_ and task_id_.is_local() and task_id_.is_alive()) else (None, None)
        )
        table.add_row(
            ti.dag_id,
            ti.run_id,
            ti.task_id,
            str(ti.try_number),
            tt.hostname if tt else "-",
            str(tt.pid) if tt and tt.pid else "-",
            f"{tt.supervisor_pid} {sup_verdict}" if tt else "-",
            fmt_bytes(rss),
            f"{cpu:.2f}" if cpu is not None else "-",
            fmt_time(tt.start_date if tt else None),
            verdict,
        )
    console.print(table)
    if mismatches:
        console.print(
            f"[red]{mismatches} tr{'y' if mismatches == 1 else 'ies'} with a recorded process that is not alive; "
            "the scheduler marks them zombie at its next check.[/]"
        )
