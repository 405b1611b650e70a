"""``headrace doctor``: measure this installation and print findings with suggestions.

Exit code 0, or 1 when any finding is an ``error`` (e.g. tries killed for
going over their memory limit), so it can gate a script or a CI job.
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from headrace.cli.common import app_state, console
from headrace.doctor import Finding, Severity, diagnose, worst

SEVERITY_STYLES = {Severity.OK: "green", Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.ERROR: "bold red"}


def render(findings: list[Finding]) -> list[Table]:
    """One Rich table per area (in the order given), a row per finding: severity, finding, suggestion."""
    tables: list[Table] = []
    for f in findings:
        if not tables or tables[-1].title != f.area.value:
            table = Table(title=f.area.value, title_justify="left", title_style="bold", expand=True)
            table.add_column("severity", no_wrap=True, width=8)
            table.add_column("finding", overflow="fold", ratio=3)
            table.add_column("suggestion", overflow="fold", ratio=2)
            tables.append(table)
        style = SEVERITY_STYLES[f.severity]
        tables[-1].add_row(f"[{style}]{f.severity.value}[/]", f.title, f.suggestion)
    return tables


def doctor(
    ctx: typer.Context,
    hours: float = typer.Option(
        24.0, "--hours", min=0.001, help="Look back this many hours for usage, memory and delays."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as a JSON list instead of a table."),
) -> None:
    """Measure slots, processes, tries, memory, scheduler/DB latency and DAG parsing; suggest fixes.

    Exit code 1 when any finding is an error.
    """
    state = app_state(ctx)
    findings = diagnose(state.settings, state.migrated_db(), hours=hours)
    if as_json:
        print(json.dumps([f.to_dict() for f in findings], indent=2, default=str))
    else:
        for table in render(findings):
            console.print(table)
        counts = {s: sum(f.severity is s for f in findings) for s in Severity}
        console.print(" · ".join(f"[{SEVERITY_STYLES[s]}]{n} {s.value}[/]" for s, n in counts.items()))
    if worst(findings) is Severity.ERROR:
        raise typer.Exit(1)
