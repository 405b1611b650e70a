"""``/api/v1/connections``: how tasks reach outside systems. ``password`` and ``extra`` are encrypted at rest.

Output never contains a password: ``password`` is ``***`` when one is set
(``null`` otherwise). ``extra`` is shown with the values of sensitive keys
(``crypto.is_sensitive_key``) replaced by ``***``, at any depth.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace import secrets_store
from headrace.api import schemas
from headrace.api.auth import get_db, get_encryptor, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.authoring.secrets import Connection as StoredConnection
from headrace.crypto import MASK, Encryptor
from headrace.db.models import Connection
from headrace.exceptions import Conflict, NotFound
from headrace.masking import mask_sensitive

router = APIRouter(tags=["Connection"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
NOT_FOUND = not_found("no such connection")
PLAIN_FIELDS = ("conn_type", "description", "host", "port", "login", "schema")


def connection_out(row: Connection, enc: Encryptor) -> schemas.Connection:
    """The API form of a connection: password hidden, sensitive extra fields masked."""
    extra = mask_sensitive(json.loads(enc.decrypt(row.extra))) if row.extra else None
    return schemas.Connection(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        description=row.description,
        host=row.host,
        port=row.port,
        login=row.login,
        schema=row.schema,
        password=MASK if row.password else None,
        extra=extra,
    )


def _get(session: Session, conn_id: str) -> Connection:
    row = session.get(Connection, conn_id)
    if row is None:
        raise NotFound(f"connection {conn_id!r} not found")
    return row


def _merged(
    old: StoredConnection | None, conn_id: str, body: schemas.ConnectionCreate | schemas.ConnectionPatch
) -> StoredConnection:
    """``old`` (or an empty connection) with the fields ``body`` gives; ``"password": null`` removes it."""
    base = old or StoredConnection(conn_id=conn_id, conn_type="")
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for name in PLAIN_FIELDS:
        attr = "schema_" if name == "schema" else name
        if attr in given and not (name == "conn_type" and getattr(body, attr) is None):
            changes[name] = getattr(body, attr)
    if "password" in given:
        changes["password"] = body.password or None
    if "extra" in given:
        changes["extra"] = dict(body.extra) if body.extra is not None else {}
    return replace(base, **changes)


@router.get("/connections", response_model=schemas.ConnectionCollection, dependencies=[VIEWER])
def list_connections(request: Request, pg: Annotated[Page, Depends(page)]) -> schemas.ConnectionCollection:
    """Connections sorted by conn_id."""
    enc = get_encryptor(request)
    stmt = select(Connection)
    with get_db(request).read_session() as session:
        rows = session.scalars(pg.apply(stmt.order_by(Connection.conn_id)))
        return schemas.ConnectionCollection(
            connections=[connection_out(r, enc) for r in rows], total_entries=count(session, stmt)
        )


@router.post(
    "/connections",
    response_model=schemas.Connection,
    dependencies=[OPERATOR],
    responses={409: {"description": "a connection with this conn_id exists"}},
)
def create_connection(body: schemas.ConnectionCreate, request: Request) -> schemas.Connection:
    """Create a connection (operator); password and extra are stored encrypted."""
    enc = get_encryptor(request)
    with get_db(request).session() as session:
        if session.get(Connection, body.conn_id) is not None:
            raise Conflict(f"connection {body.conn_id!r} already exists")
        secrets_store.set_connection(session, enc, _merged(None, body.conn_id, body))
        session.flush()
        return connection_out(_get(session, body.conn_id), enc)


@router.get("/connections/{conn_id}", response_model=schemas.Connection, dependencies=[VIEWER], responses=NOT_FOUND)
def get_connection(conn_id: str, request: Request) -> schemas.Connection:
    """One connection (password never shown)."""
    enc = get_encryptor(request)
    with get_db(request).read_session() as session:
        return connection_out(_get(session, conn_id), enc)


@router.patch("/connections/{conn_id}", response_model=schemas.Connection, dependencies=[OPERATOR], responses=NOT_FOUND)
def patch_connection(conn_id: str, body: schemas.ConnectionPatch, request: Request) -> schemas.Connection:
    """Change the fields given (operator); ``"password": null`` removes the password."""
    enc = get_encryptor(request)
    with get_db(request).session() as session:
        _get(session, conn_id)
        old = secrets_store.get_connection(session, enc, conn_id)
        secrets_store.set_connection(session, enc, _merged(old, conn_id, body))
        session.flush()
        return connection_out(_get(session, conn_id), enc)


@router.delete("/connections/{conn_id}", status_code=204, dependencies=[OPERATOR], responses=NOT_FOUND)
def delete_connection(conn_id: str, request: Request) -> None:
    """Delete a connection (operator)."""
    with get_db(request).session() as session:
        _get(session, conn_id)
        secrets_store.delete_connection(session, conn_id)


__all__ = ["connection_out", "router"]
