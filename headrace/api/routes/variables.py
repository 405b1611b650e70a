"""``/api/v1/variables``: settings tasks read. Values are Fernet-encrypted at rest.

A value whose key is sensitive (``crypto.is_sensitive_key``: ``password``,
``token``, ``secret``, …) is shown as ``***`` in lists to everyone, and on
``GET /variables/{key}`` to viewers; operators and admins get it in clear there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace import secrets_store
from headrace.api import schemas
from headrace.api.auth import get_db, get_encryptor, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.api.users import Principal, role_allows
from headrace.crypto import MASK, Encryptor, is_sensitive_key
from headrace.db.models import Variable
from headrace.exceptions import Conflict, NotFound

router = APIRouter(tags=["Variable"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
NOT_FOUND = not_found("no such variable")


def variable_out(row: Variable, enc: Encryptor, *, reveal: bool) -> schemas.Variable:
    """The API form of a variable; a sensitive value is decrypted only if ``reveal``."""
    value = enc.decrypt(row.value) if reveal or not is_sensitive_key(row.key) else MASK
    return schemas.Variable(key=row.key, value=value, description=row.description)


def _get(session: Session, key: str) -> Variable:
    row = session.get(Variable, key)
    if row is None:
        raise NotFound(f"variable {key!r} not found")
    return row


@router.get("/variables", response_model=schemas.VariableCollection, dependencies=[VIEWER])
def list_variables(request: Request, pg: Annotated[Page, Depends(page)]) -> schemas.VariableCollection:
    """Variables sorted by key; sensitive values are ``***``."""
    enc = get_encryptor(request)
    stmt = select(Variable)
    with get_db(request).read_session() as session:
        rows = session.scalars(pg.apply(stmt.order_by(Variable.key)))
        return schemas.VariableCollection(
            variables=[variable_out(r, enc, reveal=False) for r in rows], total_entries=count(session, stmt)
        )


@router.post(
    "/variables",
    response_model=schemas.Variable,
    dependencies=[OPERATOR],
    responses={409: {"description": "a variable with this key exists"}},
)
def create_variable(body: schemas.VariableCreate, request: Request) -> schemas.Variable:
    """Create a variable (operator); the value is stored encrypted."""
    enc = get_encryptor(request)
    with get_db(request).session() as session:
        if session.get(Variable, body.key) is not None:
            raise Conflict(f"variable {body.key!r} already exists")
        secrets_store.set_variable(session, enc, body.key, body.value, description=body.description)
        session.flush()
        return variable_out(_get(session, body.key), enc, reveal=True)


@router.get("/variables/{key}", response_model=schemas.Variable, responses=NOT_FOUND)
def get_variable(key: str, request: Request, who: Annotated[Principal, VIEWER]) -> schemas.Variable:
    """One variable; a sensitive value is ``***`` for viewers."""
    enc = get_encryptor(request)
    with get_db(request).read_session() as session:
        return variable_out(_get(session, key), enc, reveal=role_allows(who.role, "operator"))


@router.patch("/variables/{key}", response_model=schemas.Variable, dependencies=[OPERATOR], responses=NOT_FOUND)
def patch_variable(key: str, body: schemas.VariablePatch, request: Request) -> schemas.Variable:
    """Change a variable's value and/or description (operator)."""
    enc = get_encryptor(request)
    with get_db(request).session() as session:
        _get(session, key)
        secrets_store.update_variable(
            session,
            enc,
            key,
            value=body.value,
            description=body.description,
            change_description="description" in body.model_fields_set,
        )
        session.flush()
        return variable_out(_get(session, key), enc, reveal=True)


@router.delete("/variables/{key}", status_code=204, dependencies=[OPERATOR], responses=NOT_FOUND)
def delete_variable(key: str, request: Request) -> None:
    """Delete a variable (operator)."""
    with get_db(request).session() as session:
        _get(session, key)
        secrets_store.delete_variable(session, key)


__all__ = ["router", "variable_out"]
