"""``headrace db migrate|reset``: create, upgrade or wipe the metadata database."""

from __future__ import annotations

import typer

from headrace.cli.common import app_state, console
from headrace.db.migrate import migrate, reset

app = typer.Typer(help="Create, upgrade or reset the metadata database.", no_args_is_help=True)


@app.command("migrate")
def migrate_cmd(ctx: typer.Context) -> None:
    """Create the schema, or upgrade it to this version of headrace."""
    state = app_state(ctx)
    revision = migrate(state.db, default_pool_slots=state.settings.get("core", "default_pool_slots"))
    console.print(f"database {state.db.engine.url.render_as_string(hide_password=True)} is at revision {revision}")


@app.command("reset")
def reset_cmd(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Drop every table and create the schema again. All history is lost."""
    state = app_state(ctx)
    url = state.db.engine.url.render_as_string(hide_password=True)
    if not yes and not typer.confirm(f"Drop all headrace tables in {url}?"):
        raise typer.Exit(1)
    revision = reset(state.db, default_pool_slots=state.settings.get("core", "default_pool_slots"))
    console.print(f"database {url} reset; at revision {revision}")
