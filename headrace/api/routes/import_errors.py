"""``/api/v1/importErrors``: DAG files that failed to import."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.pagination import Page, count, page
from headrace.db.models import ImportError_
from headrace.exceptions import NotFound

router = APIRouter(tags=["ImportError"], dependencies=[Depends(schemas.reject_nul_bytes), Depends(require("viewer"))])


@router.get("/importErrors", response_model=schemas.ImportErrorCollection)
def list_import_errors(request: Request, pg: Annotated[Page, Depends(page)]) -> schemas.ImportErrorCollection:
    """Import errors, sorted by file."""
    stmt = select(ImportError_)
    with get_db(request).read_session() as session:
        rows = session.scalars(pg.apply(stmt.order_by(ImportError_.fileloc, ImportError_.id)))
        return schemas.ImportErrorCollection(
            import_errors=[schemas.ImportError.model_validate(r) for r in rows], total_entries=count(session, stmt)
        )


@router.get(
    "/importErrors/{import_error_id}",
    response_model=schemas.ImportError,
    responses={404: {"description": "no such import error"}},
)
def get_import_error(import_error_id: int, request: Request) -> schemas.ImportError:
    """One import error (ids change when a file is parsed again)."""
    with get_db(request).read_session() as session:
        row = session.get(ImportError_, import_error_id) if 0 < import_error_id < 2**62 else None
        if row is None:
            raise NotFound(f"import error {import_error_id} not found (the file may have been fixed)")
        return schemas.ImportError.model_validate(row)


__all__ = ["router"]
