"""``headrace config list``: every effective setting and where it came from."""

from __future__ import annotations

import typer
from rich.table import Table

from headrace.cli.common import app_state, console
from headrace.config import ENV_PREFIX, SPEC

app = typer.Typer(help="Show the configuration.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    section: str | None = typer.Option(None, "--section", help="Only this section."),
) -> None:
    """List effective values, their source (default, file, env) and what they mean."""
    settings = app_state(ctx).settings
    table = Table(title=f"HEADRACE_HOME={settings.home}")
    for column in ("setting", "value", "source", "environment variable", "meaning"):
        table.add_column(column, overflow="fold")
    for sec, options in SPEC.items():
        if section and sec != section:
            continue
        for key, option in options.items():
            table.add_row(
                f"{sec}.{key}",
                str(settings.values[sec][key]),
                settings.sources[sec][key],
                f"{ENV_PREFIX}{sec.upper()}__{key.upper()}",
                option.doc,
            )
    console.print(table)
