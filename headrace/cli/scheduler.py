"""``headrace scheduler``, ``headrace standalone`` and ``headrace dags test``: commands that run the loop.

``standalone`` is the embedded, one-command system: it migrates the database,
loads the bundled example DAGs, triggers the example pipeline once and runs
the scheduler (with the DAG processor) in this process, printing the outcome
of that run when it ends. ``dags test`` runs one DAG run to the end with the
scheduler's own steps and prints each task's state as it changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlalchemy import select

from headrace.api.users import create_user, new_password
from headrace.cli.common import AppState, app_state, console, fmt_time, parse_conf, parse_date, styled
from headrace.cli.progress import wait_for_runs
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagModel, DagRun, Lease, TaskInstance, User
from headrace.exceptions import DagNotFound
from headrace.executors import make_executor
from headrace.observability.metrics import SchedulerMetrics, start_scheduler_metrics_server
from headrace.scheduler import loop
from headrace.scheduler.__main__ import make_processor
from headrace.scheduler.runs import trigger_dag

EXAMPLE_PIPELINE = "example_penguins_report"


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.get("logging", "logging_level"),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def scheduler(ctx: typer.Context) -> None:
    """Run the scheduler and the DAG processor until SIGTERM or Ctrl-C."""
    state = app_state(ctx)
    _setup_logging(state.settings)
    db = state.migrated_db()
    metrics = SchedulerMetrics()
    start_scheduler_metrics_server(metrics.registry, int(state.settings.get("metrics", "scheduler_port")),
                                   str(state.settings.get("metrics", "scheduler_host")))
    loop.run(state.settings, db, make_executor(state.settings), processor=make_processor(state.settings, db),
             listeners=[metrics])


class RunWatcher:
    """Prints the task states of one DAG run as they change; says when the run ends."""

    def __init__(self, db: Database, run_pk: int, *, on_end: Callable[[DagRun], None] | None = None) -> None:
        self.db, self.run_pk, self.on_end = db, run_pk, on_end
        self.seen: dict[str, tuple[str, int]] = {}
        self.ended: DagRun | None = None

    def __call__(self, _now: datetime) -> None:
        if self.ended is not None:
            return
        with self.db.session() as session:
            run = session.get(DagRun, self.run_pk)
            assert run is not None
            tis = session.execute(
                select(TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number, TaskInstance.end_reason)
                .where(TaskInstance.dag_run_id == self.run_pk)
                .order_by(TaskInstance.updated_at, TaskInstance.task_id)
            ).all()
        for task_id, ti_state, try_number, reason in tis:
            if self.seen.get(task_id) != (ti_state, try_number) and ti_state not in ("none", "scheduled"):
                self.seen[task_id] = (ti_state, try_number)
                extra = f" ({reason})" if reason and reason not in (ti_state, "success") else ""
                console.print(f"  {run.dag_id}.{task_id} try {try_number}: {styled(ti_state)}{extra}")
        if run.state in ("success", "failed"):
            self.ended = run
            if self.on_end is not None:
                self.on_end(run)


def api_server(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Default: api.host."),
    port: int | None = typer.Option(None, "--port", "-p", help="Default: api.port."),
) -> None:
    """Serve the REST API, the web UI and /metrics until Ctrl-C."""
    from headrace.api.server import serve  # FastAPI/uvicorn cost ~0.6 s to import: only the commands that serve pay it
    state = app_state(ctx)
    _setup_logging(state.settings)
    db = state.migrated_db()
    shown_host = host or state.settings.get("api", "host")
    console.print(f"headrace api-server on http://{shown_host}:{port if port is not None else state.settings.get('api', 'port')}")
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
    _setup_logging(settings)
    db = state.db
    revision = migrate(db, default_pool_slots=settings.get("core", "default_pool_slots"))
    url = db.engine.url.render_as_string(hide_password=True)
    console.print(f"[bold]headrace standalone[/] — HEADRACE_HOME={settings.home}")
    console.print(f"  database   {url} (revision {revision})")
    console.print(f"  dags       {settings.dags_folder} + bundled examples")
    console.print(f"  logs       {settings.base_log_folder}")
    console.print(f"  executor   {settings.executor}, parallelism {settings.parallelism}")
    metrics = SchedulerMetrics()
    if ui:
        from headrace.api.server import start_in_thread  # see api_server: FastAPI is imported only to serve

        created = ensure_admin(db)
        server = start_in_thread(settings, db, port=port, metrics_registry=metrics.registry)
        console.print(f"  web UI     [bold]{server.url}[/]  (REST API {server.url}/api/v1, metrics {server.url}/metrics)")
        if created is not None:
            console.print(f"  login      user [bold]{created[0]}[/] password [bold]{created[1]}[/] (shown once; "
                          "`headrace users set-password admin` makes a new one)")
        else:
            console.print("  login      an admin exists already; `headrace users set-password admin` resets a password")
    else:
        start_scheduler_metrics_server(metrics.registry, int(settings.get("metrics", "scheduler_port")),
                                       str(settings.get("metrics", "scheduler_host")))
    processor = make_processor(settings, db)
    stats = processor.refresh(datetime.now(UTC))
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
    loop.run(settings, db, make_executor(settings), processor=processor, after_loop=watcher, listeners=[metrics])


def _lease_held_by_other(db: Database, now: datetime) -> bool:
    with db.session() as session:
        lease = session.get(Lease, "scheduler")
        return lease is not None and lease.expires_at > now


def dags_test(
    ctx: typer.Context,
    dag_id: str,
    logical_date: str | None = typer.Argument(None, help="ISO date; default now."),
    conf: str | None = typer.Option(None, "--conf", "-c", help="JSON object passed to the run (params)."),
) -> None:
    """Run one DAG run to the end without a separate scheduler, printing each task's state.

    The DAG's file is parsed first, so edits are picked up. If a scheduler is
    already running it runs the DAG run and this command only reports on it.
    Exit code 1 if the run fails.
    """
    state: AppState = app_state(ctx)
    settings = state.settings
    db = state.migrated_db()
    with db.session() as session:
        model = session.get(DagModel, dag_id)
        fileloc = model.fileloc if model else None
    processor = make_processor(settings, db)
    if fileloc is not None:  # also re-parse its file when it lives outside dags_folder (an example DAG)
        processor.folders.append(Path(fileloc).parent)
    processor.refresh(datetime.now(UTC))
    with db.session() as session:
        if session.get(DagModel, dag_id) is None:
            raise DagNotFound(f"no DAG with dag_id {dag_id!r} in {settings.dags_folder}; see `headrace dags list`")
        when = parse_date(logical_date) or datetime.now(UTC)
        run = trigger_dag(
            session, dag_id, conf=parse_conf(conf), logical_date=when,
            run_id=f"test__{when.isoformat()}", now=datetime.now(UTC),
        )
        run_pk, run_id = run.id, run.run_id
    console.print(f"testing {dag_id}: DAG run {run_id}")
    if _lease_held_by_other(db, datetime.now(UTC)):
        console.print("a scheduler is running; it runs this DAG run — waiting for it")
        (final,) = wait_for_runs(db, [run_pk])
    else:
        watcher = RunWatcher(db, run_pk)
        stop_when_done = watcher

        def after_loop(now: datetime) -> None:
            stop_when_done(now)
            if watcher.ended is not None:
                stop.set()

        stop = threading.Event()
        loop.run(settings, db, make_executor(settings), processor=None, stop=stop, after_loop=after_loop)
        assert watcher.ended is not None
        final = watcher.ended
    console.print(f"DAG run {final.run_id} {styled(final.state)} (ended {fmt_time(final.end_date)})")
    if final.state != "success":
        raise typer.Exit(1)
