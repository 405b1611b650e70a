"""``/api/v1/dagWarnings``: what DAG authors wrote that headrace accepts and ignores (Airflow's DAG warnings).

The DAG processor replaces a DAG's warnings each time it parses the DAG's file
(``headrace.authoring.dag_warnings``); a DAG's own ``warnings`` are also in
``GET /dags`` and ``GET /dags/{dag_id}``.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.pagination import Page, count, page
from headrace.db.models import DagModel, DagWarning

router = APIRouter(tags=["DagWarning"], dependencies=[Depends(schemas.reject_nul_bytes), Depends(require("viewer"))])


class WarningOrder(str, Enum):
    """Sort keys of ``GET /dagWarnings`` (``-`` for descending); ties keep parse order."""

    dag_id = "dag_id"
    dag_id_desc = "-dag_id"
    warning_type = "warning_type"
    warning_type_desc = "-warning_type"
    message = "message"
    message_desc = "-message"
    timestamp = "timestamp"
    timestamp_desc = "-timestamp"


_WARNING_COLUMNS = {
    "dag_id": DagWarning.dag_id,
    "warning_type": DagWarning.warning_type,
    "message": DagWarning.message,
    "timestamp": DagWarning.timestamp,
}


@router.get("/dagWarnings", response_model=schemas.DAGWarningCollection)
def list_dag_warnings(
    request: Request,
    pg: Annotated[Page, Depends(page)],
    dag_id: Annotated[str | None, Query(max_length=250, description="Only the warnings of this DAG.")] = None,
    warning_type: Annotated[schemas.DagWarningType | None, Query(description="Only warnings of this kind.")] = None,
    order_by: Annotated[WarningOrder, Query()] = WarningOrder.dag_id,
) -> schemas.DAGWarningCollection:
    """Warnings of active DAGs: what their authors wrote that headrace ignores. Sorted by dag_id by default.

    An unknown ``dag_id`` is an empty page, not a 404 (as in Airflow).
    """
    stmt = select(DagWarning).join(DagModel, DagModel.dag_id == DagWarning.dag_id).where(DagModel.is_active.is_(True))
    if dag_id is not None:
        stmt = stmt.where(DagWarning.dag_id == dag_id)
    if warning_type is not None:
        stmt = stmt.where(DagWarning.warning_type == warning_type.value)
    column = _WARNING_COLUMNS[order_by.value.lstrip("-")]
    desc = order_by.value.startswith("-")
    ordered = stmt.order_by(column.desc() if desc else column.asc(), DagWarning.dag_id, DagWarning.id)
    with get_db(request).read_session() as session:
        rows = session.scalars(pg.apply(ordered))
        return schemas.DAGWarningCollection(
            dag_warnings=[schemas.DAGWarning.model_validate(r) for r in rows], total_entries=count(session, stmt)
        )


__all__ = ["WarningOrder", "router"]
