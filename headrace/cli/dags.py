"""``headrace dags …``: list, inspect (``show``, ``next-execution``), pause, trigger, backfill and test DAGs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from sqlalchemy import select

from headrace.cli.common import (
    app_state,
    console,
    dag_label,
    fail,
    fmt_time,
    parse_conf,
    parse_date,
    styled,
)
from headrace.cli.progress import RunWatcher, wait_for_runs
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, ImportError_, Lease
from headrace.exceptions import DagNotFound

if TYPE_CHECKING:
    from headrace.config import Settings
    from headrace.dagfiles.serialization import SerializedDag

# headrace.scheduler.runs and .user_actions (DAG deserialization, timetables) are imported by the commands that
# write, and the loop and executors by ``dags test`` alone: ``dags list`` should start quickly (headrace.cli.main).

app = typer.Typer(help="List, show, trigger, backfill, pause and test DAGs.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Include DAGs whose file no longer defines them."),
) -> None:
    """List the DAGs the DAG processor has parsed."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        stmt = select(DagModel).order_by(DagModel.dag_id)
        if not all_:
            stmt = stmt.where(DagModel.is_active.is_(True))
        dags = list(session.scalars(stmt))
        n_errors = len(list(session.scalars(select(ImportError_.id))))
        warnings = queries.dag_warnings(session, [d.dag_id for d in dags])
    table = Table(title=f"DAGs ({len(dags)})")
    for column in ("dag_id", "display name", "schedule", "paused", "next run", "tags", "file", "warnings"):
        table.add_column(column, overflow="fold")
    for d in dags:
        table.add_row(
            d.dag_id,
            d.dag_display_name or d.dag_id,  # Airflow's rule: the dag_id when no display name is given
            d.schedule or "None",
            "[yellow]yes[/]" if d.is_paused else "no",
            fmt_time(d.next_logical_date),
            ", ".join(d.tags or []),
            d.fileloc,
            "\n".join(f"[yellow]{w.message}[/]" for w in warnings.get(d.dag_id, [])) or "-",
        )
    console.print(table)
    if warnings:
        console.print(
            f"[yellow]{sum(map(len, warnings.values()))} DAG warning(s): arguments headrace accepts "
            "but does not act on yet, or default_args no task takes (see the warnings column)[/]"
        )
    if n_errors:
        console.print(f"[red]{n_errors} DAG file(s) failed to import: headrace dags list-import-errors[/]")


@app.command("list-import-errors")
def list_import_errors(ctx: typer.Context) -> None:
    """List DAG files that failed to import, with file, line and message."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        errors = list(session.scalars(select(ImportError_).order_by(ImportError_.fileloc)))
    if not errors:
        console.print("no import errors")
        return
    table = Table(title=f"import errors ({len(errors)})")
    for column in ("file", "line", "error", "when"):
        table.add_column(column, overflow="fold")
    for e in errors:
        table.add_row(e.fileloc, str(e.lineno or "-"), e.message, fmt_time(e.timestamp))
    console.print(table)
    raise typer.Exit(1)


def _set_paused(ctx: typer.Context, dag_id: str, paused: bool) -> None:
    from headrace.scheduler.user_actions import set_paused

    db = app_state(ctx).migrated_db()
    with db.session() as session:
        set_paused(session, dag_id, paused)
    console.print(f"{dag_id} is {'paused' if paused else 'unpaused'}")


@app.command("pause")
def pause(ctx: typer.Context, dag_id: str) -> None:
    """Pause a DAG: no new scheduled runs; running tries finish."""
    _set_paused(ctx, dag_id, True)


@app.command("unpause")
def unpause(ctx: typer.Context, dag_id: str) -> None:
    """Unpause a DAG."""
    _set_paused(ctx, dag_id, False)


@app.command("list-runs")
def list_runs(
    ctx: typer.Context,
    dag_id: str,
    state: str | None = typer.Option(None, "--state", help="Only runs in this state."),
    limit: int = typer.Option(25, "--limit", min=1),
) -> None:
    """List a DAG's runs, newest first."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        model = session.get(DagModel, dag_id)
        if model is None:
            raise DagNotFound(f"no DAG with dag_id {dag_id!r}; see `headrace dags list`")
        label = dag_label(dag_id, model.dag_display_name)
        stmt = select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(limit)
        if state:
            stmt = stmt.where(DagRun.state == state)
        runs = list(session.scalars(stmt))
    table = Table(title=f"runs of {label}")
    for column in ("run_id", "type", "state", "logical date", "started", "ended"):
        table.add_column(column, overflow="fold")
    for r in runs:
        table.add_row(
            r.run_id,
            r.run_type,
            styled(r.state),
            fmt_time(r.logical_date),
            fmt_time(r.start_date),
            fmt_time(r.end_date),
        )
    console.print(table)


@app.command("trigger")
def trigger(
    ctx: typer.Context,
    dag_id: str,
    conf: str | None = typer.Option(
        None, "--conf", "-c", help="JSON object passed to the run; its keys override the DAG's params."
    ),
    run_id: str | None = typer.Option(None, "--run-id", "-r"),
    logical_date: str | None = typer.Option(None, "--logical-date", "-l", help="ISO date; default now."),
    wait: bool = typer.Option(False, "--wait", help="Show progress and wait until the run finishes."),
) -> None:
    """Create a manual DAG run; a running scheduler picks it up. Exit 1 if --wait and it fails.

    A --conf over api.max_conf_bytes (of compact JSON) is refused, as the API refuses it. The DAG's params,
    overridden by --conf, are validated against their JSON schemas first: a bad value is a one-line error
    naming the param and the reason (exit 1), and no run is created.
    """
    from headrace.scheduler.runs import trigger_dag

    state = app_state(ctx)
    run_conf = parse_conf(conf)
    db = state.migrated_db()
    with db.session() as session:
        run = trigger_dag(
            session,
            dag_id,
            conf=run_conf,
            logical_date=parse_date(logical_date),
            run_id=run_id,
            now=datetime.now(UTC),
            max_conf_bytes=state.settings.get_int("api", "max_conf_bytes"),
            allowed_run_id_pattern=state.settings.get_str("scheduler", "allowed_run_id_pattern"),
        )
        run_pk, created_run_id = run.id, run.run_id
        model = session.get(DagModel, dag_id)
        paused = model is not None and model.is_paused
    console.print(f"created DAG run {created_run_id} of {dag_id}")
    if paused:  # new DAGs start paused (core.dags_are_paused_at_creation): say why the run does not start
        console.print(
            f"[yellow]DAG {dag_id} is paused: the run starts when it is unpaused (`headrace dags unpause {dag_id}`)[/]"
        )
    if wait:
        (final,) = wait_for_runs(db, [run_pk])
        console.print(f"DAG run {final.run_id} finished: {styled(final.state)}")
        if final.state != "success":
            raise typer.Exit(1)


@app.command("backfill")
def backfill(
    ctx: typer.Context,
    dag_id: str,
    start_date: str = typer.Option(..., "--start-date", "-s", help="First logical date (ISO)."),
    end_date: str = typer.Option(..., "--end-date", "-e", help="Last logical date (ISO), inclusive."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Show progress until every run finishes."),
) -> None:
    """Create runs for every schedule interval between two dates; a running scheduler runs them."""
    from headrace.scheduler.runs import create_backfill

    db = app_state(ctx).migrated_db()
    start, end = parse_date(start_date, what="--start-date"), parse_date(end_date, what="--end-date")
    assert start is not None and end is not None
    if end < start:
        raise fail(f"--end-date {end_date} is before --start-date {start_date}")
    with db.session() as session:
        runs = create_backfill(session, dag_id, start, end, now=datetime.now(UTC))
        pks = [r.id for r in runs]
        ids = [r.run_id for r in runs]
    console.print(f"backfill of {dag_id}: {len(ids)} new DAG run(s)")
    if wait and pks:
        finals = wait_for_runs(db, pks)
        failed = [r.run_id for r in finals if r.state != "success"]
        console.print(f"{len(finals) - len(failed)} succeeded, {len(failed)} failed")
        if failed:
            raise typer.Exit(1)


def _lease_held_by_other(db: Database, now: datetime) -> bool:
    with db.session() as session:
        lease = session.get(Lease, "scheduler")
        return lease is not None and lease.expires_at > now


@app.command("test")
def test(
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
    from headrace.scheduler.runs import check_conf_size, trigger_dag
    from headrace.scheduler.start import make_processor

    state = app_state(ctx)
    settings = state.settings
    run_conf = parse_conf(conf)
    check_conf_size(run_conf, settings.get_int("api", "max_conf_bytes"))  # before the parse, which takes time
    db = state.migrated_db()
    with db.session() as session:
        model = session.get(DagModel, dag_id)
        fileloc = model.fileloc if model else None
    processor = make_processor(settings, db)
    if fileloc is not None:  # also re-parse its file when it lives outside dags_folder (an example DAG)
        processor.folders.append(Path(fileloc).parent)
    processor.refresh(datetime.now(UTC))
    with db.session() as session:
        parsed = session.get(DagModel, dag_id)
        if parsed is None:
            raise DagNotFound(f"no DAG with dag_id {dag_id!r} in {settings.dags_folder}; see `headrace dags list`")
        # A test run runs whatever the pause (as Airflow's `dags test`): a paused DAG (new DAGs start paused)
        # is unpaused for the run and paused again after it.
        was_paused = parsed.is_paused
        parsed.is_paused = False
        when = parse_date(logical_date) or datetime.now(UTC)
        run = trigger_dag(
            session,
            dag_id,
            conf=run_conf,
            logical_date=when,
            run_id=f"test__{when.isoformat()}",
            now=datetime.now(UTC),
        )
        run_pk, run_id = run.id, run.run_id
    console.print(
        f"testing {dag_id}: DAG run {run_id}" + (" (paused DAG: unpaused for this run)" if was_paused else "")
    )
    try:
        final = _run_test(db, settings, run_pk)
    finally:
        if was_paused:
            from headrace.scheduler.user_actions import set_paused

            with db.session() as session:
                set_paused(session, dag_id, True)
    console.print(f"DAG run {final.run_id} {styled(final.state)} (ended {fmt_time(final.end_date)})")
    if final.state != "success":
        raise typer.Exit(1)


def _run_test(db: Database, settings: Settings, run_pk: int) -> DagRun:
    """Run (or, if another scheduler holds the lease, wait for) the test DAG run ``run_pk``; return it ended."""
    from headrace.executors import make_executor
    from headrace.scheduler import loop

    if _lease_held_by_other(db, datetime.now(UTC)):
        console.print("a scheduler is running; it runs this DAG run — waiting for it")
        (final,) = wait_for_runs(db, [run_pk])
    else:
        watcher = RunWatcher(db, run_pk)
        stop_when_done = watcher
        stop = threading.Event()

        def after_loop(now: datetime) -> None:
            stop_when_done(now)
            if watcher.ended is not None:
                stop.set()

        # Only the test run: no scheduled runs of this DAG (unpaused for the test), nothing of other DAGs. On this
        # machine, as Airflow's `dags test`: with core.executor = celery its tries do not go to the workers.
        if settings.executor == "celery":
            settings = settings.with_overrides({"core": {"executor": "local"}})
        loop.run(
            settings, db, make_executor(settings), processor=None, stop=stop, after_loop=after_loop, only_run=run_pk
        )
        assert watcher.ended is not None
        final = watcher.ended
    return final


def _current_dag(db: Database, dag_id: str) -> tuple[DagModel, SerializedDag]:
    """The DAG's row and its newest parsed version; raises DagNotFound."""
    from headrace.dagfiles.serialization import SerializedDag

    with db.read_session() as session:
        model = session.get(DagModel, dag_id)
        version = queries.current_version(session, model) if model is not None else None
        if model is None or version is None:
            raise DagNotFound(f"no parsed DAG with dag_id {dag_id!r}; see `headrace dags list`", dag_id=dag_id)
        session.expunge(model)
        return model, SerializedDag.from_dict(version.serialized)


@app.command("next-execution")
def next_execution(
    ctx: typer.Context,
    dag_id: str,
    num_executions: int = typer.Option(1, "--num-executions", "-n", min=1, max=1000, help="How many to show."),
) -> None:
    """Print the logical dates of the DAG's next N scheduled runs, one a line (``None`` when there is none).

    The first is the run the scheduler will create next; the others follow from the DAG's timetable.
    """
    from headrace.authoring.schedules import DataInterval
    from headrace.dagfiles.serialization import next_runs

    db = app_state(ctx).migrated_db()
    model, sdag = _current_dag(db, dag_id)
    if model.is_paused:
        console.print(f"[yellow]DAG {dag_id} is paused: no scheduled run is created until it is unpaused[/]")
    if model.next_logical_date is None:
        console.print("None")
        return
    console.print(model.next_logical_date.isoformat())
    interval = DataInterval(
        model.next_data_interval_start or model.next_logical_date,
        model.next_data_interval_end or model.next_logical_date,
    )
    now = datetime.now(UTC)
    for _ in range(num_executions - 1):
        info = next_runs(sdag, interval, now)
        if info is None:
            console.print("None")
            return
        console.print(info.logical_date.isoformat())
        interval = info.data_interval


def _group_task_count(sdag: SerializedDag, group_id: str) -> int:
    """Tasks in the group, its nested groups' included (children are task ids and group ids)."""
    children = sdag.task_groups[group_id].children
    return sum(_group_task_count(sdag, c) if c in sdag.task_groups else int(c in sdag.tasks) for c in children)


def dependency_order(sdag: SerializedDag) -> list[str]:
    """The DAG's task ids in dependency order: each after all its upstream tasks, ties by task id."""
    waiting = {t: len(task.upstream_task_ids & sdag.tasks.keys()) for t, task in sdag.tasks.items()}
    ready = sorted(t for t, n in waiting.items() if n == 0)
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for nxt in sorted(sdag.tasks[current].downstream_task_ids & sdag.tasks.keys()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
        ready.sort()
    return order


@app.command("show")
def show(ctx: typer.Context, dag_id: str) -> None:
    """Print the DAG's structure as text: its tasks in dependency order, each with the tasks that follow it.

    A task's line marks it ``setup`` / ``teardown`` and ``mapped`` (with its group when the group is
    mapped); an edge with a ``Label`` shows it in quotes; task groups are listed after the header.
    """
    db = app_state(ctx).migrated_db()
    _, sdag = _current_dag(db, dag_id)
    order = dependency_order(sdag)
    edges = sum(len(t.downstream_task_ids) for t in sdag.tasks.values())
    console.print(
        f"DAG {dag_label(dag_id, sdag.dag_display_name)}: {len(order)} task(s), {edges} edge(s), schedule {sdag.schedule or 'None'}"
    )
    for group_id, group in sdag.task_groups.items():
        members = _group_task_count(sdag, group_id)
        mapped = " (mapped)" if group.is_mapped else ""
        console.print(f"group {group_id}{mapped}: {members} task(s)", markup=False)
    width = len(str(len(order)))
    for number, task_id in enumerate(order, 1):
        task = sdag.tasks[task_id]
        marks = ["setup"] * task.is_setup + ["teardown"] * task.is_teardown
        if task.mapped_group is not None:
            marks.append(f"mapped with group {task.mapped_group}")
        elif task.expand_input is not None:
            marks.append("mapped")
        extra = f" [{', '.join(marks)}]" if marks else ""
        console.print(f"{number:>{width}}. {task_id} ({task.operator}){extra}", markup=False)
        labels = sdag.edge_info.get(task_id, {})
        for nxt in sorted(task.downstream_task_ids):
            label = labels.get(nxt, {}).get("label")
            console.print(f"{'':>{width}}    >> {nxt}" + (f'  "{label}"' if label else ""), markup=False)
