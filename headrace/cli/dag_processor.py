"""``headrace dag-processor``: parse the DAG files for every scheduler, in a process of its own (Airflow's command)."""

from __future__ import annotations

import typer

from headrace.cli.common import app_state, console
from headrace.dagfiles.standalone import run_dag_processor
from headrace.scheduler.start import make_processor, setup_logging


def dag_processor(ctx: typer.Context) -> None:
    """Parse the DAG files every scheduler.dag_dir_list_interval seconds until SIGTERM or Ctrl-C."""
    state = app_state(ctx)
    setup_logging(state.settings)
    db = state.migrated_db()
    console.print(
        f"headrace dag-processor: {state.settings.dags_folder} every "
        f"{state.settings.get_float('scheduler', 'dag_dir_list_interval'):g} s"
    )
    run_dag_processor(state.settings, db, make_processor(state.settings, db))
