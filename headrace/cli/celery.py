"""``headrace celery worker|status|flower``: run a Celery worker, see what the workers run, open Flower.

Celery, kombu and the executor modules are imported inside each command: the
other commands of this group's ``--help`` should not pay for them.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from headrace.cli.common import app_state, console, err_console, fmt_bytes

app = typer.Typer(
    help="Run a Celery worker (core.executor = celery), list the workers and their tries, or start Flower.",
    no_args_is_help=True,
)


def _queues(value: str | None) -> list[str] | None:
    if value is None:
        return None
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise typer.BadParameter("name at least one queue, e.g. --queues default,heavy", param_hint="--queues")
    return queues


@app.command()
def worker(
    ctx: typer.Context,
    queues: str | None = typer.Option(
        None, "--queues", "-q", help="Comma-separated queues to consume (default: operators.default_queue)."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", min=1, max=4096, help="Tries at once (default: celery.worker_concurrency)."
    ),
    hostname: str | None = typer.Option(
        None, "--hostname", "-n", help="The worker's Celery node name (default: headrace@<host>)."
    ),
) -> None:
    """Run a Celery worker: each slot is a thread, each try a supervisor forked on demand; until SIGTERM."""
    from headrace.executors.celery_worker import run_worker

    settings = app_state(ctx).settings
    raise typer.Exit(run_worker(settings, queues=_queues(queues), concurrency=concurrency, hostname=hostname))


def _task_pids(ctx: typer.Context, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, int | None]]:
    """``(host, task pid)`` of the given tries as their supervisors recorded them ({} if the DB cannot be read)."""
    if not keys:
        return {}
    from sqlalchemy import select, tuple_

    from headrace.db.models import TaskTry

    try:
        with app_state(ctx).db.read_session() as session:
            rows = session.execute(
                select(TaskTry.task_instance_id, TaskTry.try_number, TaskTry.hostname, TaskTry.pid).where(
                    tuple_(TaskTry.task_instance_id, TaskTry.try_number).in_(keys)
                )
            ).all()
    except Exception as exc:  # noqa: BLE001 - the workers' own answer is still worth showing
        err_console.print(f"[yellow]could not read the tries' task pids from the database: {exc}[/]")
        return {}
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def _queue_cell(queues: list[str], consuming: list[str]) -> str:
    """The worker's queues, each marked ``(not consuming)`` when the worker stopped taking from it."""
    return ", ".join(q if q in consuming else f"{q} [red](not consuming)[/]" for q in queues)


@app.command()
def status(
    ctx: typer.Context,
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.05, help="Seconds to wait for workers' replies (default: celery.operation_timeout)."
    ),
) -> None:
    """List the workers that answer: their queues, slots in use, memory, and the tries each runs."""
    from headrace.executors.celery_app import make_app
    from headrace.executors.celery_worker import STATUS_COMMAND

    settings = app_state(ctx).settings
    celery_app = make_app(settings)
    wait = timeout if timeout is not None else settings.get_float("celery", "operation_timeout")
    try:
        replies: list[dict[str, Any]] = celery_app.control.broadcast(STATUS_COMMAND, reply=True, timeout=wait) or []
    except Exception as exc:  # noqa: BLE001 - kombu's connection errors have no common base
        err_console.print(f"[red]error:[/] cannot reach the broker {settings.get_str('celery', 'broker_url')}: {exc}")
        raise typer.Exit(1) from None
    finally:
        celery_app.close()
    workers = sorted((name, info) for reply in replies for name, info in reply.items() if isinstance(info, dict))
    if not workers:
        console.print(f"no worker answered within {wait:g} s on {settings.get_str('celery', 'broker_url')}")
        raise typer.Exit(1)
    table = Table(title=f"celery workers ({len(workers)})")
    for column in ("worker", "pid", "queues (consuming)", "slots in use", "tries' RSS", "memory"):
        table.add_column(column, overflow="fold")
    for name, info in workers:
        limit = info.get("memory_limit")
        memory = "no limit" if limit is None else f"limit {fmt_bytes(limit)}"
        if info.get("paused"):
            memory += " [red]PAUSED: over the limit, taking no new try[/]"
        table.add_row(
            name,
            str(info.get("pid", "-")),
            _queue_cell(info.get("queues", []), info.get("consuming", [])),
            f"{info.get('in_use', 0)}/{info.get('concurrency', '?')}",
            fmt_bytes(info.get("rss")),
            memory,
        )
    console.print(table)
    tries = [(name, t) for name, info in workers for t in info.get("tries", [])]
    pids = _task_pids(ctx, [(t["ti_id"], t["try_number"]) for _, t in tries])
    listing = Table(title=f"tries running ({len(tries)})")
    for column in ("worker", "dag_id", "task_id", "run_id", "map", "try", "host", "supervisor pid", "pid", "RSS"):
        listing.add_column(column, overflow="fold")
    for name, t in tries:
        host, pid = pids.get((t["ti_id"], t["try_number"]), ("-", None))
        listing.add_row(
            name,
            t["dag_id"],
            t["task_id"],
            t["run_id"],
            str(t["map_index"]) if t["map_index"] >= 0 else "-",
            str(t["try_number"]),
            host,
            str(t["supervisor_pid"] or "-"),
            str(pid or "-"),
            fmt_bytes(t["rss"]),
        )
    console.print(listing)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(ctx: typer.Context) -> None:
    """Start Flower (Celery's dashboard) on headrace's Celery app; further arguments go to Flower (--port=5555)."""
    from headrace.executors.celery_app import make_app

    try:
        import flower as _flower  # noqa: F401
    except ImportError:
        err_console.print("[red]error:[/] Flower is not installed: pip install flower")
        raise typer.Exit(1) from None
    code = make_app(app_state(ctx).settings).start(["flower", *ctx.args])
    raise typer.Exit(code or 0)
