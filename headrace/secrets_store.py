"""Reading and writing variables and connections in the metadata DB, encrypted at rest.

One place for the supervisor (serving ``Variable.get`` / ``Connection.get`` to
a task), the CLI (``headrace variables|connections``) and the REST API.
Every function takes an ORM ``Session`` (the caller owns the transaction)
and an :class:`~headrace.crypto.Encryptor`; values go in and come out as
plain text and are stored as Fernet tokens: ``variable.value``,
``connection.password`` and ``connection.extra`` (a JSON object).

It lives outside ``headrace.db`` because the encryptor is built from the
settings, which ``headrace.db`` must not know about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring.secrets import Connection, ConnectionNotFound, VariableNotFound
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.db.models import Connection as ConnectionRow
from headrace.db.models import Variable as VariableRow
from headrace.exceptions import InvalidRequest
from headrace.masking import SecretMasker, masker_for_stored

# --- variables -------------------------------------------------------------------


@dataclass(frozen=True)
class StoredVariable:
    """A variable as stored, decrypted."""

    key: str
    value: str
    """Plain text."""
    description: str | None
    updated_at: datetime


def get_variable(session: Session, encryptor: Encryptor, key: str) -> str | None:
    """The plain-text value of variable ``key``, or None. Raises ``SecretsError`` if it cannot be decrypted."""
    token = session.scalar(select(VariableRow.value).where(VariableRow.key == key))
    return None if token is None else encryptor.decrypt(token)


def list_variables(session: Session, encryptor: Encryptor) -> list[StoredVariable]:
    """Every variable, decrypted, ordered by key."""
    rows = session.scalars(select(VariableRow).order_by(VariableRow.key))
    return [StoredVariable(r.key, encryptor.decrypt(r.value), r.description, r.updated_at) for r in rows]


def set_variable(
    session: Session,
    encryptor: Encryptor,
    key: str,
    value: str,
    *,
    description: str | None = None,
    now: datetime | None = None,
) -> None:
    """Create or replace variable ``key`` (its description too, when given). Raises ``InvalidRequest`` for a bad key."""
    _check_id("variable key", key)
    row = session.get(VariableRow, key)
    when = now or datetime.now(UTC)
    if row is None:
        session.add(VariableRow(key=key, value=encryptor.encrypt(value), description=description, updated_at=when))
        return
    row.value = encryptor.encrypt(value)
    row.updated_at = when
    if description is not None:
        row.description = description


def update_variable(
    session: Session,
    encryptor: Encryptor,
    key: str,
    *,
    value: str | None = None,
    description: str | None = None,
    change_description: bool = False,
    now: datetime | None = None,
) -> None:
    """Change an existing variable: its value if ``value`` is given, its description (None clears it) if
    ``change_description``. Raises ``VariableNotFound``."""
    row = session.get(VariableRow, key)
    if row is None:
        raise VariableNotFound(f"no variable with key {key!r}", key=key)
    if value is not None:
        row.value = encryptor.encrypt(value)
    if change_description:
        row.description = description
    row.updated_at = now or datetime.now(UTC)


def delete_variable(session: Session, key: str) -> None:
    """Delete variable ``key``. Raises ``VariableNotFound``."""
    row = session.get(VariableRow, key)
    if row is None:
        raise VariableNotFound(f"no variable with key {key!r}", key=key)
    session.delete(row)
    session.flush()


# --- connections -----------------------------------------------------------------


def _to_connection(row: ConnectionRow, encryptor: Encryptor) -> Connection:
    extra: dict[str, Any] = {}
    if row.extra:
        loaded = json.loads(encryptor.decrypt(row.extra))
        extra = loaded if isinstance(loaded, dict) else {}
    return Connection(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        host=row.host,
        port=row.port,
        login=row.login,
        password=encryptor.decrypt(row.password) if row.password is not None else None,
        schema=row.schema,
        extra=extra,
        description=row.description,
    )


def get_connection(session: Session, encryptor: Encryptor, conn_id: str) -> Connection | None:
    """Connection ``conn_id`` in plain text, or None. Raises ``SecretsError`` if it cannot be decrypted."""
    row = session.get(ConnectionRow, conn_id)
    return None if row is None else _to_connection(row, encryptor)


def list_connections(session: Session, encryptor: Encryptor) -> list[Connection]:
    """Every connection in plain text, ordered by conn_id."""
    rows = session.scalars(select(ConnectionRow).order_by(ConnectionRow.conn_id))
    return [_to_connection(r, encryptor) for r in rows]


def set_connection(session: Session, encryptor: Encryptor, conn: Connection, *, now: datetime | None = None) -> None:
    """Create or replace ``conn`` (every field). Raises ``InvalidRequest`` for a bad conn_id or type."""
    _check_id("conn_id", conn.conn_id)
    if not conn.conn_type:
        raise InvalidRequest(f"connection {conn.conn_id!r} needs a conn_type (e.g. postgres, http)")
    row = session.get(ConnectionRow, conn.conn_id)
    if row is None:
        row = ConnectionRow(conn_id=conn.conn_id)
        session.add(row)
    row.conn_type = conn.conn_type
    row.description = conn.description
    row.host = conn.host
    row.port = conn.port
    row.login = conn.login
    row.password = encryptor.encrypt(conn.password) if conn.password is not None else None
    row.schema = conn.schema
    row.extra = encryptor.encrypt(json.dumps(conn.extra, sort_keys=True)) if conn.extra else None
    row.updated_at = now or datetime.now(UTC)


def delete_connection(session: Session, conn_id: str) -> None:
    """Delete connection ``conn_id``. Raises ``ConnectionNotFound``."""
    row = session.get(ConnectionRow, conn_id)
    if row is None:
        raise ConnectionNotFound(f"no connection with conn_id {conn_id!r}", conn_id=conn_id)
    session.delete(row)
    session.flush()


def parse_connection_uri(conn_id: str, uri: str) -> Connection:
    """A connection from a URI ``type://login:password@host:port/schema?key=value`` (parts URL-quoted).

    The inverse of ``Connection.get_uri``; ``-`` in the scheme becomes ``_``;
    an ``__extra__`` parameter holds a JSON object of extra fields.
    Raises ``InvalidRequest`` when it has no scheme or a bad port.
    """
    parts = urlsplit(uri)
    if not parts.scheme:
        raise InvalidRequest(f"connection URI {uri!r} has no type (scheme), e.g. postgres://host/db")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"connection URI has a bad port: {exc}") from None
    extra: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "__extra__" in extra:
        try:
            loaded = json.loads(extra.pop("__extra__"))
        except ValueError as exc:
            raise InvalidRequest(f"connection URI: __extra__ is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidRequest("connection URI: __extra__ must be a JSON object")
        extra.update(loaded)
    return Connection(
        conn_id=conn_id,
        conn_type=parts.scheme.replace("-", "_"),
        host=unquote(parts.hostname or "") or None,
        port=port,
        login=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        schema=unquote(parts.path.lstrip("/")) or None,
        extra=extra,
    )


def _check_id(what: str, value: str) -> None:
    if not value or len(value) > 250 or value != value.strip():
        raise InvalidRequest(f"{what} {value!r} must be 1-250 characters without surrounding spaces")


# --- a runtime for task code run outside a supervisor --------------------------------


class DatabaseSecrets:
    """A ``SecretsRuntime`` reading the DB directly, for task code run in a process with DB access.

    ``headrace tasks test`` can install it with
    ``headrace.authoring.secrets.install_secrets_runtime(DatabaseSecrets(db, encryptor))``;
    a task process never does (it asks its supervisor).
    """

    def __init__(self, db: Database, encryptor: Encryptor) -> None:
        self._db = db
        self._encryptor = encryptor

    def get_variable(self, key: str) -> str | None:
        """The plain-text value of variable ``key``, or None."""
        with self._db.read_session() as session:
            return get_variable(session, self._encryptor, key)

    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        """Connection ``conn_id`` as ``Connection.to_dict()``, or None."""
        with self._db.read_session() as session:
            conn = get_connection(session, self._encryptor, conn_id)
        return None if conn is None else conn.to_dict()


__all__ = [
    "DatabaseSecrets",
    "StoredVariable",
    "delete_connection",
    "delete_variable",
    "get_connection",
    "get_variable",
    "list_connections",
    "list_variables",
    "parse_connection_uri",
    "set_connection",
    "set_variable",
    "update_variable",
    "stored_secrets_masker",
]


def stored_secrets_masker(session: Session, encryptor: Encryptor) -> SecretMasker:
    """A masker knowing every secret stored in the metadata DB (see :func:`headrace.masking.masker_for_stored`)."""
    variables = [(str(k), str(v)) for k, v in session.execute(select(VariableRow.key, VariableRow.value))]
    connections = [(p, e) for p, e in session.execute(select(ConnectionRow.password, ConnectionRow.extra))]
    return masker_for_stored(variables, connections, encryptor.decrypt)
