"""``…/taskInstances/{task_id}/xcomEntries``: the XComs a task instance pushed."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import select

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.api.routes.task_instances import MapIndex, get_ti
from headrace.authoring.xcom import deserialize_xcom
from headrace.db.models import XCom
from headrace.exceptions import HeadraceError, NotFound

router = APIRouter(tags=["XCom"], dependencies=[Depends(schemas.reject_nul_bytes), Depends(require("viewer"))])

TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"
NOT_FOUND = not_found("no such DAG, DAG run, task instance or XCom")


def xcom_value(text: str) -> Any:
    """The stored XCom as plain JSON: datetimes as ISO strings, tuples and sets as lists, bytes as text.

    A value that has no plain JSON form (bytes that are not UTF-8) is given as stored, with its type tags.
    """
    try:
        return jsonable_encoder(deserialize_xcom(text))
    except (HeadraceError, ValueError, TypeError):  # XComError, or bytes that are not UTF-8: show it as stored
        return json.loads(text)


def xcom_out(row: XCom) -> schemas.XComEntry:
    """The API form of an ``xcom`` row."""
    return schemas.XComEntry(key=row.key, value=xcom_value(row.value), created_at=row.created_at)


@router.get(f"{TI_PATH}/xcomEntries", response_model=schemas.XComCollection, responses=NOT_FOUND)
def list_xcoms(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    request: Request,
    pg: Annotated[Page, Depends(page)],
    map_index: MapIndex = -1,
) -> schemas.XComCollection:
    """The XComs of a task instance, sorted by key (its latest try's: a new try starts with none)."""
    with get_db(request).read_session() as session:
        run, _ = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        stmt = select(XCom).where(XCom.dag_run_id == run.id, XCom.task_id == task_id, XCom.map_index == map_index)
        rows = session.scalars(pg.apply(stmt.order_by(XCom.key)))
        return schemas.XComCollection(xcom_entries=[xcom_out(x) for x in rows], total_entries=count(session, stmt))


@router.get(f"{TI_PATH}/xcomEntries/{{key}}", response_model=schemas.XComEntry, responses=NOT_FOUND)
def get_xcom(
    dag_id: str, dag_run_id: str, task_id: str, key: str, request: Request, map_index: MapIndex = -1
) -> schemas.XComEntry:
    """One XCom."""
    with get_db(request).read_session() as session:
        run, _ = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        row = session.scalars(
            select(XCom).where(
                XCom.dag_run_id == run.id, XCom.task_id == task_id, XCom.map_index == map_index, XCom.key == key
            )
        ).first()
        if row is None:
            raise NotFound(f"task instance {task_id!r} of DAG run {dag_run_id!r} has no XCom {key!r}")
        return xcom_out(row)


__all__ = ["router", "xcom_out", "xcom_value"]
