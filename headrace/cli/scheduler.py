"""``headrace scheduler``, ``headrace standalone`` and ``headrace api-server``: commands that run the loop or serve.

``standalone`` is the embedded, one-command system: it migrates the database,
loads the bundled example DAGs, triggers the example pipeline once and runs
the scheduler (with the DAG processor) in this process, printing the outcome
of that run when it ends. (``dags test``, which runs one DAG run with the
scheduler's own steps, is in :mod:`headrace.cli.dags`.)
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from sqlalchemy import select

from headrace.api.users import create_user, new_password
from headrace.cli.common import app_state, console
from headrace.cli.progress import RunWatcher
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagRun, User
from headrace.observability.metrics import SchedulerMetrics
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.start import (
    known_dag_ids,
    make_processor,
    run_scheduler,
    setup_logging,
    unpause_new_examples,
)
from headrace.triggerer.keeper import TriggererKeeper

EXAMPLE_PIPELINE = "example_penguins_report"


def scheduler(ctx: typer.Context) -> None:
    """Run the scheduler and the DAG processor until SIGTERM or Ctrl-C."""
    state = app_state(ctx)
    setup_logging(state.settings)
    run_scheduler(state.settings, state.migrated_db())


def api_server(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Default: api.host."),
    port: int | None = typer.Option(None, "--port", "-p", help="Default: api.port."),
) -> None:
    """Serve the REST API, the web UI and /metrics until Ctrl-C."""
    from headrace.webapp import serve  # FastAPI/uvicorn cost ~0.6 s to import: only the commands that serve pay it

    state = app_state(ctx)
    setup_logging(state.settings)
    db = state.migrated_db()
    shown_host = host or state.settings.get("api", "host")
    console.print(
        f"headrace api-server on http://{shown_host}:{port if port is not None else state.settings.get('api', 'port')}"
    )
    serve(state.settings, db, host=host, port=port)


def ensure_admin(db: Database) -> tuple[str, str] | None:
    """Create user ``admin`` (role admin) if no admin exists; return (username, password) when created."""
    with db.session() as session:
        if session.scalar(select(User.id).where(User.role == "admin").limit(1)) is not None:
            return None
        username = "admin"
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            username = f"admin-{new_password()[:6].lower()}"
        password = new_password()
        create_user(session, username, password, "admin", now=datetime.now(UTC))
    return username, password


def standalone(
    ctx: typer.Context,
    trigger: bool = typer.Option(True, "--trigger/--no-trigger", help=f"Trigger {EXAMPLE_PIPELINE} once at start."),
    ui: bool = typer.Option(True, "--ui/--no-ui", help="Serve the web UI and REST API in this process."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port of the UI (default: api.port)."),
) -> None:
    """Migrate, load the example DAGs, serve the UI, trigger the example pipeline once, run the scheduler."""
    state = app_state(ctx)
    settings = state.settings.with_overrides({"core": {"load_examples": True}})
    setup_logging(settings)
    db = state.db
    revision = migrate(db, default_pool_slots=settings.get("core", "default_pool_slots"))
    url = db.engine.url.render_as_string(hide_password=True)
    console.print(f"[bold]headrace standalone[/] — HEADRACE_HOME={settings.home}")
    console.print(f"  database   {url} (revision {revision})")
    console.print(f"  dags       {settings.dags_folder} + bundled examples")
    console.print(f"  logs       {settings.base_log_folder}")
    console.print(f"  executor   {settings.executor}, parallelism {settings.parallelism}")
    metrics: SchedulerMetrics | None = None  # without the UI, run_scheduler serves them on metrics.scheduler_port
    if ui:
        from headrace.webapp import start_in_thread  # see api_server: FastAPI is imported only to serve

        created = ensure_admin(db)
        metrics = SchedulerMetrics()
        server = start_in_thread(settings, db, port=port, metrics_registry=metrics.registry)
        console.print(
            f"  web UI     [bold]{server.url}[/]  (REST API {server.url}/api/v1, metrics {server.url}/metrics)"
        )
        if created is not None:
            console.print(
                f"  login      user [bold]{created[0]}[/] password [bold]{created[1]}[/] (shown once; "
                "`headrace users set-password admin` makes a new one)"
            )
        else:
            console.print("  login      an admin exists already; `headrace users set-password admin` resets a password")
    processor = make_processor(settings, db)
    known = known_dag_ids(db)
    stats = processor.refresh(datetime.now(UTC))
    unpause_new_examples(db, known)  # new DAGs start paused (core.dags_are_paused_at_creation); the examples run
    console.print(f"  parsed     {stats.files_parsed} file(s): {stats.dags} DAG(s), {stats.errors} import error(s)")
    watcher: RunWatcher | None = None
    if trigger:
        with db.session() as session:
            run = trigger_dag(session, EXAMPLE_PIPELINE, now=datetime.now(UTC))
            run_pk, run_id = run.id, run.run_id
        console.print(f"  triggered  {EXAMPLE_PIPELINE} run {run_id}")

        def report(run: DagRun) -> None:
            ds = run.logical_date.strftime("%Y-%m-%d") if run.logical_date else "?"
            path = settings.home / "reports" / f"penguins_{ds}.md"
            if run.state == "success":
                console.print(f"[green]{EXAMPLE_PIPELINE} run {run.run_id} succeeded; report: {path}[/]")
            else:
                console.print(
                    f"[red]{EXAMPLE_PIPELINE} run {run.run_id} {run.state}; see "
                    f"`headrace tasks states-for-dag-run {EXAMPLE_PIPELINE} {run.run_id}`[/]"
                )
            console.print("scheduler keeps running; Ctrl-C to stop")

        watcher = RunWatcher(db, run_pk, on_end=report)
    keeper = TriggererKeeper(settings, db)  # a triggerer process only while triggers exist

    def after_loop(now: datetime) -> None:
        keeper(now)
        if watcher is not None:
            watcher(now)

    try:
        run_scheduler(settings, db, processor=processor, metrics=metrics, after_loop=after_loop)
    finally:
        keeper.close()
