"""The ``headrace`` command: builds Settings and the Database once, then dispatches.

Command names follow Airflow's (``db migrate``, ``dags trigger``, ``tasks test``,
``scheduler``, ``standalone``, ``config list``) plus ``headrace ps``.
Any ``HeadraceError`` becomes a one-line message on stderr and exit code 1.
"""

from __future__ import annotations

import sys

import typer

from headrace import __version__
from headrace.cli import config_cmd, dags, db, doctor, ps, tasks, users
from headrace.cli import connections, variables
from headrace.cli import scheduler as scheduler_cmd
from headrace.cli.common import AppState, err_console
from headrace.config import load_settings
from headrace.db.engine import Database
from headrace.exceptions import HeadraceError

app = typer.Typer(
    name="headrace",
    help="headrace: author DAGs in Python, schedule them, run every try in a supervised process.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(dags.app, name="dags")
app.add_typer(tasks.app, name="tasks")
app.add_typer(config_cmd.app, name="config")
app.add_typer(users.app, name="users")
app.add_typer(variables.app, name="variables")
app.add_typer(connections.app, name="connections")
app.command("ps")(ps.ps)
app.command("doctor")(doctor.doctor)
app.command("scheduler")(scheduler_cmd.scheduler)
app.command("standalone")(scheduler_cmd.standalone)
app.command("api-server")(scheduler_cmd.api_server)
dags.app.command("test")(scheduler_cmd.dags_test)


def _version(value: bool) -> None:
    if value:
        print(f"headrace {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Load the configuration (headrace.toml in HEADRACE_HOME, then HEADRACE__SECTION__KEY variables)."""
    settings = load_settings()
    ctx.obj = AppState(
        settings=settings,
        db=Database(settings.database_url, pool_size=settings.get("database", "pool_size")),
    )


def main() -> None:
    """Entry point of the ``headrace`` script."""
    try:
        app()
    except HeadraceError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
