"""``headrace pools list|set|delete``: the pools that limit how many tries of their tasks run at once."""

from __future__ import annotations

import typer
from rich.table import Table

from headrace.cli.common import app_state, console
from headrace.db.pools import delete_pool, list_pools, set_pool

app = typer.Typer(
    help="List, create or change, and delete pools (slots tries of their tasks share).", no_args_is_help=True
)


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List pools with their slots: total, running, queued and open."""
    db = app_state(ctx).migrated_db()
    with db.read_session() as session:
        pools = list_pools(session)
    table = Table(title=f"pools ({len(pools)})")
    for column in ("pool", "slots", "running", "queued", "open", "description"):
        table.add_column(column, overflow="fold")
    for p in pools:
        table.add_row(p.name, str(p.slots), str(p.running), str(p.queued), p.open_text, p.description or "")
    console.print(table)


@app.command("set")
def set_cmd(ctx: typer.Context, name: str, slots: int, description: str) -> None:
    """Create pool NAME with SLOTS slots and DESCRIPTION, or change them if it exists (as Airflow's).

    Fewer slots than in use: running tries go on, no new ones start until enough have finished.
    SLOTS -1: unlimited (as Airflow's).
    """
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        pool = set_pool(session, name, slots, description)
        console.print(f"pool {pool.name} has {'unlimited' if pool.slots == -1 else pool.slots} slot(s)")


@app.command("delete")
def delete_cmd(ctx: typer.Context, name: str) -> None:
    """Delete pool NAME (exit code 1 for default_pool, an unknown pool, or one whose slots are in use)."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        delete_pool(session, name)
    console.print(f"pool {name} deleted")
