"""``headrace users create|list|set-password|set-role|delete|token``: logins of the UI and API.

Changing a user's password or role, or deleting it, ends every login session of that user at once
(their browsers must log in again); API tokens survive a password change and act with the new role.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table
from sqlalchemy import select

from headrace.api.users import (
    ROLES,
    check_role,
    create_token,
    create_user,
    delete_user,
    get_user,
    new_password,
    set_password,
    set_role,
)
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
def set_password_cmd(
    ctx: typer.Context,
    username: str,
    password: str | None = typer.Option(None, "--password", "-p", help="Default: generate one."),
) -> None:
    """Set a user's password (prints a generated one); ends the user's login sessions."""
    db = app_state(ctx).migrated_db()
    secret = new_password() if password is None else password
    with db.session() as session:
        ended = set_password(session, get_user(session, username), secret)
    console.print(f"password of {username} changed; {ended} login session(s) ended")
    if password is None:
        console.print(f"password: [bold]{secret}[/] (shown once)")


@app.command("set-role")
def set_role_cmd(
    ctx: typer.Context,
    username: str,
    role: str = typer.Argument(..., help=f"One of {', '.join(ROLES)}."),
) -> None:
    """Change a user's role; ends the user's login sessions (API tokens get the new role)."""
    check_role(role)
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        ended = set_role(session, get_user(session, username), role)
    console.print(f"{username} now has role {role}; {ended} login session(s) ended")


@app.command("delete")
def delete(ctx: typer.Context, username: str) -> None:
    """Delete a user with its API tokens and login sessions."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        delete_user(session, get_user(session, username))
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
