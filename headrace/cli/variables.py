"""``headrace variables set|get|list|delete``: variables tasks read with ``Variable.get``, stored encrypted."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from headrace.authoring.secrets import VariableNotFound
from headrace.cli.common import app_state, console, fmt_time
from headrace.crypto import Encryptor
from headrace.exceptions import InvalidRequest
from headrace.masking import masked_variable
from headrace.secrets_store import delete_variable, get_variable, list_variables, set_variable

app = typer.Typer(help="Variables tasks read with Variable.get (values encrypted at rest).", no_args_is_help=True)


@app.command("set")
def set_cmd(
    ctx: typer.Context,
    key: str,
    value: str,
    description: str | None = typer.Option(None, "--description", "-d", help="What the variable is for."),
    as_json: bool = typer.Option(
        False, "--json", help="Check that VALUE is valid JSON (for var.json / deserialize_json)."
    ),
) -> None:
    """Create or replace variable KEY with VALUE."""
    if as_json:
        try:
            json.loads(value)
        except ValueError as exc:
            raise InvalidRequest(f"value of {key!r} is not valid JSON: {exc}") from None
    state = app_state(ctx)
    db = state.migrated_db()
    with db.session() as session:
        set_variable(session, Encryptor.from_settings(state.settings), key, value, description=description)
    console.print(f"variable {key} set")


@app.command("get")
def get_cmd(
    ctx: typer.Context,
    key: str,
    default: str | None = typer.Option(
        None, "--default", help="Print this if KEY does not exist (instead of failing)."
    ),
) -> None:
    """Print the value of variable KEY in plain text (exit code 1 if it does not exist)."""
    state = app_state(ctx)
    db = state.migrated_db()
    with db.read_session() as session:
        value = get_variable(session, Encryptor.from_settings(state.settings), key)
    if value is None:
        if default is None:
            raise VariableNotFound(f"no variable with key {key!r}; see `headrace variables list`", key=key)
        value = default
    print(value)


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List variables; values of keys that name a secret (password, token, …) are shown as ***."""
    state = app_state(ctx)
    db = state.migrated_db()
    with db.read_session() as session:
        rows = list_variables(session, Encryptor.from_settings(state.settings))
    table = Table("key", "value", "description", "updated")
    for v in rows:
        table.add_row(v.key, masked_variable(v.key, v.value), v.description or "", fmt_time(v.updated_at))
    console.print(table)


@app.command("delete")
def delete_cmd(ctx: typer.Context, key: str) -> None:
    """Delete variable KEY (exit code 1 if it does not exist)."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        delete_variable(session, key)
    console.print(f"variable {key} deleted")
