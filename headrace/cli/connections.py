"""``headrace connections add|get|list|delete``: connections tasks read with ``Connection.get``.

Passwords and extra fields are stored encrypted; output shows them as ``***``
(``get --reveal`` prints the plain text).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from headrace.authoring.secrets import Connection, ConnectionNotFound
from headrace.cli.common import app_state, console
from headrace.crypto import Encryptor
from headrace.exceptions import InvalidRequest
from headrace.masking import masked_connection
from headrace.secrets_store import (
    delete_connection,
    get_connection,
    list_connections,
    parse_connection_uri,
    set_connection,
)

app = typer.Typer(
    help="Connections tasks read with Connection.get (password and extra encrypted at rest).", no_args_is_help=True
)


def _extra(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"--conn-extra is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest("--conn-extra must be a JSON object")
    return value


@app.command("add")
def add_cmd(
    ctx: typer.Context,
    conn_id: str,
    conn_uri: str | None = typer.Option(
        None, "--conn-uri", help="All fields as type://login:password@host:port/schema?k=v."
    ),
    conn_type: str | None = typer.Option(None, "--conn-type", help="e.g. postgres, http, s3."),
    host: str | None = typer.Option(None, "--conn-host"),
    port: int | None = typer.Option(None, "--conn-port"),
    login: str | None = typer.Option(None, "--conn-login"),
    password: str | None = typer.Option(None, "--conn-password"),
    schema: str | None = typer.Option(None, "--conn-schema"),
    extra: str | None = typer.Option(None, "--conn-extra", help="A JSON object of extra fields."),
    description: str | None = typer.Option(None, "--conn-description"),
) -> None:
    """Create or replace connection CONN_ID, from --conn-uri or from the separate --conn-* options."""
    if conn_uri is not None:
        if any(v is not None for v in (conn_type, host, port, login, password, schema)):
            raise InvalidRequest("give either --conn-uri or the --conn-type/--conn-host/… options, not both")
        parsed = parse_connection_uri(conn_id, conn_uri)
        conn = Connection.from_dict(
            {**parsed.to_dict(), "extra": {**parsed.extra, **_extra(extra)}, "description": description}
        )
    else:
        if not conn_type:
            raise InvalidRequest("--conn-type (or --conn-uri) is required")
        conn = Connection(
            conn_id=conn_id,
            conn_type=conn_type,
            host=host,
            port=port,
            login=login,
            password=password,
            schema=schema,
            extra=_extra(extra),
            description=description,
        )
    state = app_state(ctx)
    db = state.migrated_db()
    with db.session() as session:
        set_connection(session, Encryptor.from_settings(state.settings), conn)
    console.print(f"connection {conn_id} saved")


@app.command("get")
def get_cmd(
    ctx: typer.Context,
    conn_id: str,
    reveal: bool = typer.Option(False, "--reveal", help="Print the password and extra fields in plain text."),
) -> None:
    """Print connection CONN_ID as JSON (password and sensitive extra fields as *** unless --reveal)."""
    state = app_state(ctx)
    db = state.migrated_db()
    with db.read_session() as session:
        conn = get_connection(session, Encryptor.from_settings(state.settings), conn_id)
    if conn is None:
        raise ConnectionNotFound(
            f"no connection with conn_id {conn_id!r}; see `headrace connections list`", conn_id=conn_id
        )
    print(json.dumps(conn.to_dict() if reveal else masked_connection(conn), indent=2, sort_keys=True))


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List connections; passwords and sensitive extra fields are shown as ***."""
    state = app_state(ctx)
    db = state.migrated_db()
    with db.read_session() as session:
        rows = list_connections(session, Encryptor.from_settings(state.settings))
    table = Table("conn_id", "type", "host", "port", "login", "password", "schema", "extra")
    for conn in rows:
        shown = masked_connection(conn)
        table.add_row(
            conn.conn_id,
            conn.conn_type,
            conn.host or "",
            str(conn.port or ""),
            conn.login or "",
            shown["password"] or "",
            conn.schema or "",
            json.dumps(shown["extra"]) if conn.extra else "",
        )
    console.print(table)


@app.command("delete")
def delete_cmd(ctx: typer.Context, conn_id: str) -> None:
    """Delete connection CONN_ID (exit code 1 if it does not exist)."""
    db = app_state(ctx).migrated_db()
    with db.session() as session:
        delete_connection(session, conn_id)
    console.print(f"connection {conn_id} deleted")
