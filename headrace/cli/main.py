"""The ``headrace`` command: builds Settings (and, when a command asks, the Database) once, then dispatches.

Command names follow Airflow's (``db migrate``, ``dags trigger``, ``tasks test``,
``scheduler``, ``standalone``, ``config list``) plus ``headrace ps``.
Any ``HeadraceError`` becomes a one-line message on stderr and exit code 1.

Start-up is kept short (``headrace --help`` and ``headrace dags trigger`` are
typed often, and scripts call them in loops): a command's module is imported
only when that command runs (:class:`LazyCommands`), and the database is opened
only by commands that use it (:class:`~headrace.cli.common.AppState`). So
``--help`` imports no SQLAlchemy, and ``dags list`` no Alembic, FastAPI or
executor. ``tests/cli/test_startup.py`` holds each command to what it needs.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

from headrace import __version__
from headrace.cli.common import AppState, err_console
from headrace.config import config_warnings, load_settings
from headrace.exceptions import HeadraceError

if TYPE_CHECKING:  # the Click that Typer carries inside it (typer._click), which its classes are built on
    from typer._click import Command, Context, HelpFormatter

COMMANDS: dict[str, tuple[str, str]] = {
    "ps": ("headrace.cli.ps:ps", "List running tries: recorded vs live pid, RSS and CPU; flag any mismatch."),
    "doctor": (
        "headrace.cli.doctor:doctor",
        "Measure slots, processes, tries, memory, scheduler/DB latency and DAG parsing; suggest fixes.",
    ),
    "scheduler": (
        "headrace.cli.scheduler:scheduler",
        "Run the scheduler and the DAG processor until SIGTERM or Ctrl-C.",
    ),
    "standalone": (
        "headrace.cli.scheduler:standalone",
        "Migrate, load the example DAGs, serve the UI, trigger the example pipeline once, run the scheduler.",
    ),
    "dag-processor": (
        "headrace.cli.dag_processor:dag_processor",
        "Parse the DAG files every scheduler.dag_dir_list_interval seconds until SIGTERM or Ctrl-C.",
    ),
    "triggerer": (
        "headrace.cli.triggerer:triggerer",
        "Run the triggers of deferred task instances until SIGTERM or Ctrl-C.",
    ),
    "celery": (
        "headrace.cli.celery:app",
        "Run a Celery worker (core.executor = celery), list the workers and their tries, or start Flower.",
    ),
    "api-server": ("headrace.cli.scheduler:api_server", "Serve the REST API, the web UI and /metrics until Ctrl-C."),
    "db": ("headrace.cli.db:app", "Create, upgrade or reset the metadata database."),
    "dags": ("headrace.cli.dags:app", "List, show, trigger, backfill, pause and test DAGs."),
    "tasks": (
        "headrace.cli.tasks:app",
        "List tasks, show task instance states and logs, render their templates, clear them, test one task.",
    ),
    "pools": ("headrace.cli.pools:app", "List, create or change, and delete pools (slots tries of their tasks share)."),
    "assets": (
        "headrace.cli.assets:app",
        "List assets and their events; materialize an asset (run the DAG producing it).",
    ),
    "config": ("headrace.cli.config_cmd:app", "Show the configuration."),
    "migrate": ("headrace.cli.migrate:app", "Rewrite DAG files written for another orchestrator to headrace."),
    "users": ("headrace.cli.users:app", "Users of the web UI and REST API, and their API tokens."),
    "variables": ("headrace.cli.variables:app", "Variables tasks read with Variable.get (values encrypted at rest)."),
    "connections": (
        "headrace.cli.connections:app",
        "Connections tasks read with Connection.get (password and extra encrypted at rest).",
    ),
}
"""Every command, in the order ``--help`` lists them: where it lives (``module:attribute``, a Typer app
or a command function) and the one line ``headrace --help`` shows (a test checks it is the command's own)."""


def load_command(name: str) -> Command:
    """Import the module of command ``name`` and build its Click command (a group for a Typer app)."""
    module_name, attribute = COMMANDS[name][0].split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer(add_completion=False)  # a command function: an app with that one command
    single.command(name)(target)
    return typer.main.get_command(single)


class LazyCommands(TyperGroup):
    """The root group: imports a command's module only to run it or to show its own ``--help``.

    While the root's help is drawn, :meth:`get_command` answers with a stand-in that carries only
    the name and the one line from :data:`COMMANDS` (all that the listing reads).
    """

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])
        return load_command(cmd_name)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="headrace",
    cls=LazyCommands,
    help="headrace: author DAGs in Python, schedule them, run every try in a supervised process.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
    for warning in config_warnings(settings):
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    ctx.obj = AppState(settings=settings, command=ctx.invoked_subcommand or "cli")


def main() -> None:
    """Entry point of the ``headrace`` script."""
    try:
        app()
    except HeadraceError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
