"""``/api/v1/pools``: create, read, change and delete pools, with how their slots are used now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.db.models import Pool, TaskInstance
from headrace.exceptions import Conflict, InvalidRequest, NotFound
from headrace.states import TaskInstanceState

router = APIRouter(tags=["Pool"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
DEFAULT_POOL = "default_pool"
NOT_FOUND = not_found("no such pool")


def _usage(session: Session, names: list[str]) -> dict[tuple[str, str], int]:
    """``{(pool, state): pool slots taken}`` by queued and running task instances of the pools ``names``."""
    if not names:
        return {}
    rows = session.execute(
        select(TaskInstance.pool, TaskInstance.state, func.sum(TaskInstance.pool_slots))
        .where(
            TaskInstance.pool.in_(names),
            TaskInstance.state.in_([TaskInstanceState.QUEUED.value, TaskInstanceState.RUNNING.value]),
        )
        .group_by(TaskInstance.pool, TaskInstance.state)
    )
    return {(p, s): int(n or 0) for p, s, n in rows}


def pool_out(pool: Pool, usage: dict[tuple[str, str], int]) -> schemas.Pool:
    """The API form of a pool, with its slots in use from ``usage`` (see :func:`_usage`)."""
    running = usage.get((pool.name, TaskInstanceState.RUNNING.value), 0)
    queued = usage.get((pool.name, TaskInstanceState.QUEUED.value), 0)
    return schemas.Pool(
        name=pool.name,
        slots=pool.slots,
        description=pool.description,
        occupied_slots=running + queued,
        running_slots=running,
        queued_slots=queued,
        open_slots=pool.slots - running - queued,
    )


def _get(session: Session, name: str) -> Pool:
    pool = session.get(Pool, name)
    if pool is None:
        raise NotFound(f"pool {name!r} not found")
    return pool


def _one(session: Session, pool: Pool) -> schemas.Pool:
    session.flush()
    return pool_out(pool, _usage(session, [pool.name]))


@router.get("/pools", response_model=schemas.PoolCollection, dependencies=[VIEWER])
def list_pools(request: Request, pg: Annotated[Page, Depends(page)]) -> schemas.PoolCollection:
    """Pools sorted by name."""
    stmt = select(Pool)
    with get_db(request).read_session() as session:
        pools = list(session.scalars(pg.apply(stmt.order_by(Pool.name))))
        usage = _usage(session, [p.name for p in pools])
        return schemas.PoolCollection(pools=[pool_out(p, usage) for p in pools], total_entries=count(session, stmt))


@router.post(
    "/pools",
    response_model=schemas.Pool,
    dependencies=[OPERATOR],
    responses={409: {"description": "a pool with this name exists"}},
)
def create_pool(body: schemas.PoolCreate, request: Request) -> schemas.Pool:
    """Create a pool (operator). Task instances waiting for a pool that did not exist start using it."""
    with get_db(request).session() as session:
        if session.get(Pool, body.name) is not None:
            raise Conflict(f"pool {body.name!r} already exists")
        pool = Pool(name=body.name, slots=body.slots, description=body.description)
        session.add(pool)
        return _one(session, pool)


@router.get("/pools/{pool_name}", response_model=schemas.Pool, dependencies=[VIEWER], responses=NOT_FOUND)
def get_pool(pool_name: str, request: Request) -> schemas.Pool:
    """One pool."""
    with get_db(request).read_session() as session:
        return _one(session, _get(session, pool_name))


@router.patch("/pools/{pool_name}", response_model=schemas.Pool, dependencies=[OPERATOR], responses=NOT_FOUND)
def patch_pool(pool_name: str, body: schemas.PoolPatch, request: Request) -> schemas.Pool:
    """Change a pool's slots and/or description (operator). Fewer slots than in use: running tries go on,
    no new ones start until enough have finished."""
    with get_db(request).session() as session:
        pool = _get(session, pool_name)
        if body.slots is not None:
            pool.slots = body.slots
        if "description" in body.model_fields_set:
            pool.description = body.description
        return _one(session, pool)


@router.delete(
    "/pools/{pool_name}",
    status_code=204,
    dependencies=[OPERATOR],
    responses={
        **NOT_FOUND,
        400: {"description": "default_pool cannot be deleted"},
        409: {"description": "task instances are using the pool"},
    },
)
def delete_pool(pool_name: str, request: Request) -> None:
    """Delete a pool (operator). ``default_pool`` cannot be deleted (400), nor a pool with queued or
    running task instances (409)."""
    if pool_name == DEFAULT_POOL:
        raise InvalidRequest("default_pool cannot be deleted")
    with get_db(request).session() as session:
        pool = _get(session, pool_name)
        busy = sum(_usage(session, [pool_name]).values())
        if busy:
            raise Conflict(f"pool {pool_name!r} has {busy} slot(s) taken by queued or running task instances")
        session.delete(pool)


__all__ = ["DEFAULT_POOL", "pool_out", "router"]
