"""``headrace triggerer``: run the triggers of deferred task instances in one asyncio process (Airflow's command)."""

from __future__ import annotations

import typer

from headrace.cli.common import app_state, console
from headrace.scheduler.start import setup_logging
from headrace.triggerer.runner import Triggerer


def triggerer(
    ctx: typer.Context,
    capacity: int | None = typer.Option(
        None, "--capacity", min=1, help="Most triggers this triggerer runs at once (default: triggerer.capacity)."
    ),
    exit_when_idle: float | None = typer.Option(
        None, "--exit-when-idle", min=0, help="Exit once no trigger has existed for this many seconds."
    ),
) -> None:
    """Run the triggers of deferred task instances until SIGTERM or Ctrl-C."""
    state = app_state(ctx)
    setup_logging(state.settings)
    runner = Triggerer(state.settings, state.migrated_db(), capacity=capacity, exit_when_idle=exit_when_idle)
    console.print(f"headrace triggerer: capacity {runner.capacity}")
    raise typer.Exit(runner.run())
