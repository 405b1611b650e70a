"""``headrace users create|list|set-password|delete|token``: logins of the UI and API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table
from sqlalchemy import select

from headrace.api.users import ROLES, check_role, create_token, create_user, get_user, hash_password, new_password
from headrace.cli.common import app_state, console, fmt_time
from headrace.db.models import User

app = typer.Typer(help="Users of the web UI and REST API, and their API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    username: str,
    role: str = typer.Option("viewer", "--role", "-r", help=f"One of {', '.join(ROLES)}."),
    password: str | None = typer.Option(
        None, "--password", "-p", help="Password (at least 8 characters); default: generate and print one."
    ),
) -> None:
    """Create a user; prints a generated password if none was given."""
    check_role(role)
    db = app_state(ctx).migrated_db()
    generated = password is None
    secret = new_password() if password is None else password
    with db.session() as session:
        create_user(session, username, secret, role, now=datetime.now(UTC))
    console.print(f"created user [bold]{username}[/] with role {role}")
    if generated:
        console.print(f"password: [bold]{secret}[/] (shown once)")


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """List users with their role and last login."""
    db = app_state(ctx).migrated_db()
    table = Table("username", "role", "active", "created", "last login")
    with db.read_session() as session:
        for u in session.scalars(select(User).order_by(User.username)):
            table.add_row(
                u.username, u.role, "yes" if u.is_active else "no", fmt_time(u.created_at), fmt_time(u.last_login_at)
            )
    console.print(table)


@app.command("set-password")
def set_password(
    ctx: typer.Context,
    username: str,
    password: str | None = typer.Option(None, "--password", "-p", help="Default: generate one."),
) -> None:
    """Set a user's password (prints a generated one)."""
    db = app_state(ctx).migrated_db()
    secret = new_password() if password is None else password
    with db.session() as session:
        get_user(session, username).password_hash = hash_password(secret)
    console.print(f"password of {username} changed")
    if password is None:
        console.print(f"password: [bold]{secret}[/] (shown once)")


@app.command("delete")
def delete(ctx: typer.Context, username: str) -> None:
    """Delete a user and its API tokens."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        session.delete(get_user(session, username))
    console.print(f"deleted user {username}")


@app.command("token")
def token(
    ctx: typer.Context,
    username: str,
    name: str = typer.Option("cli", "--name", "-n", help="A label to tell tokens apart."),
    days: int | None = typer.Option(None, "--days", help="Expire after this many days (default: never)."),
) -> None:
    """Make an API token acting as USERNAME and print it (shown once)."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        tok, _ = create_token(
            session,
            get_user(session, username),
            name,
            now=datetime.now(UTC),
            expires_in=timedelta(days=days) if days else None,
        )
    console.print(tok, soft_wrap=True)
