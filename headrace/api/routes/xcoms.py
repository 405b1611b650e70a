"""``…/taskInstances/{task_id}/xcomEntries``: the XComs a task instance pushed."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import select

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.api.routes.dag_runs import get_run
from headrace.api.routes.logs import stores_of
from headrace.api.routes.task_instances import MapIndex, get_ti
from headrace.authoring.xcom_backend import BaseXCom, resolve_xcom_backend
from headrace.config import Settings
from headrace.db.models import TaskInstance, XCom
from headrace.exceptions import HeadraceError, NotFound
from headrace.storage.xcoms import XComObjects, is_reference

log = logging.getLogger(__name__)

router = APIRouter(tags=["XCom"], dependencies=[Depends(schemas.reject_nul_bytes), Depends(require("viewer"))])

TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"
NOT_FOUND = not_found("no such DAG, DAG run, task instance or XCom")


def xcom_value(row: XCom, backend: type[BaseXCom] = BaseXCom, xcoms: XComObjects | None = None) -> Any:
    """The stored XCom as plain JSON, as the XCom backend's ``orm_deserialize_value`` shows it (by default:
    datetimes as ISO strings, Decimals as exact strings, tuples and sets as lists, bytes as text, objects as ``{"__class__": …, **fields}``;
    no class is imported).

    A value that has no plain JSON form (bytes that are not UTF-8) is given as stored, with its type tags.
    A value in the object store (``core.xcom_objectstorage_path``) is read from it with ``xcoms``; without
    ``xcoms`` (lists), or when it cannot be read there (the failure logged), it is shown as its reference:
    ``{"__hr__": "stored", "url": …, "size": <bytes of JSON>}``.
    """
    text = row.value
    if is_reference(text):
        if xcoms is None:
            reference: Any = json.loads(text)
            return reference
        try:
            text = xcoms.resolve(text)
        except HeadraceError as exc:
            log.warning("XCom %r of %s: %s", row.key, row.task_id, exc)
            reference = json.loads(text)
            return reference
    stored = json.loads(text)
    entry = backend(
        value=stored, key=row.key, task_id=row.task_id, dag_id=row.dag_id, run_id=row.run_id, map_index=row.map_index
    )
    try:
        return jsonable_encoder(entry.orm_deserialize_value(), custom_encoder={Decimal: str})
    except (HeadraceError, ValueError, TypeError):  # XComError, or bytes that are not UTF-8: show it as stored
        return stored
    except Exception:  # a custom backend's code failed: the stored value still shows, the failure is logged
        log.exception("%s.orm_deserialize_value failed for XCom %r of %s", backend.__name__, row.key, row.task_id)
        return stored


def xcom_backend(request: Request) -> type[BaseXCom]:
    """The deployment's XCom backend (``core.xcom_backend``). Raises ``ConfigError`` if it cannot be imported."""
    settings: Settings = request.app.state.settings
    return resolve_xcom_backend(settings.get_str("core", "xcom_backend"))


def xcom_out(row: XCom, backend: type[BaseXCom] = BaseXCom, xcoms: XComObjects | None = None) -> schemas.XComEntry:
    """The API form of an ``xcom`` row (a value in the object store read from it with ``xcoms``)."""
    return schemas.XComEntry(
        key=row.key, value=xcom_value(row, backend, xcoms), created_at=row.created_at, map_index=row.map_index
    )


def xcom_objects(request: Request) -> XComObjects | None:
    """The deployment's object store of large XCom values (None: ``core.xcom_objectstorage_path`` is not set)."""
    stores = stores_of(request)
    return XComObjects(stores) if stores.xcoms_url else None


@router.get(f"{TI_PATH}/xcomEntries", response_model=schemas.XComCollection, responses=NOT_FOUND)
def list_xcoms(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    request: Request,
    pg: Annotated[Page, Depends(page)],
    map_index: Annotated[
        int | None, Query(ge=-1, le=1_000_000, description="Only this map index (default: every task instance's).")
    ] = None,
) -> schemas.XComCollection:
    """The XComs of a task, sorted by key then map index (each task instance's latest try's: a new try starts
    with none); of one task instance with ``?map_index=`` (Airflow 3 filters only when it is given). A value in
    the object store is listed as its reference (URL and size), as Airflow lists it: read it with the
    single-XCom endpoint."""
    with get_db(request).read_session() as session:
        if map_index is None:
            run = get_run(session, dag_id, dag_run_id)
            if (
                session.scalar(
                    select(TaskInstance.id)
                    .where(TaskInstance.dag_run_id == run.id, TaskInstance.task_id == task_id)
                    .limit(1)
                )
                is None
            ):
                get_ti(session, dag_id, dag_run_id, task_id)  # TaskNotFound, saying which
            stmt = select(XCom).where(XCom.dag_run_id == run.id, XCom.task_id == task_id)
        else:
            run, _ = get_ti(session, dag_id, dag_run_id, task_id, map_index)
            stmt = select(XCom).where(XCom.dag_run_id == run.id, XCom.task_id == task_id, XCom.map_index == map_index)
        rows = session.scalars(pg.apply(stmt.order_by(XCom.key, XCom.map_index)))
        backend = xcom_backend(request)
        return schemas.XComCollection(
            xcom_entries=[xcom_out(x, backend) for x in rows], total_entries=count(session, stmt)
        )


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
        return xcom_out(row, xcom_backend(request), xcom_objects(request))


__all__ = ["router", "xcom_out", "xcom_value"]
