"""``/api/v1/pools``: create, read, change and delete pools, with how their slots are used now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.api import schemas
from headrace.api.auth import get_db, require
from headrace.api.openapi import not_found
from headrace.api.pagination import Page, count, page
from headrace.db.models import Pool
from headrace.db.pools import DEFAULT_POOL, slots_of
from headrace.db.pools import delete_pool as remove_pool
from headrace.db.pools import get_pool as find_pool
from headrace.db.pools import usage as pool_usage
from headrace.exceptions import Conflict

router = APIRouter(tags=["Pool"], dependencies=[Depends(schemas.reject_nul_bytes)])

VIEWER = Depends(require("viewer"))
OPERATOR = Depends(require("operator"))
NOT_FOUND = not_found("no such pool")


def pool_out(pool: Pool, usage: dict[tuple[str, str], int]) -> schemas.Pool:
    """The API form of a pool, with its slots in use from ``usage`` (see :func:`headrace.db.pools.usage`)."""
    s = slots_of(pool, usage)
    return schemas.Pool(
        name=s.name,
        slots=s.slots,
        description=s.description,
        occupied_slots=s.occupied,
        running_slots=s.running,
        queued_slots=s.queued,
        open_slots=s.open,
    )


def _one(session: Session, pool: Pool) -> schemas.Pool:
    session.flush()
    return pool_out(pool, pool_usage(session, [pool.name]))


@router.get("/pools", response_model=schemas.PoolCollection, dependencies=[VIEWER])
def list_pools(request: Request, pg: Annotated[Page, Depends(page)]) -> schemas.PoolCollection:
    """Pools sorted by name."""
    stmt = select(Pool)
    with get_db(request).read_session() as session:
        pools = list(session.scalars(pg.apply(stmt.order_by(Pool.name))))
        usage = pool_usage(session, [p.name for p in pools])
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
        return _one(session, find_pool(session, pool_name))


@router.patch("/pools/{pool_name}", response_model=schemas.Pool, dependencies=[OPERATOR], responses=NOT_FOUND)
def patch_pool(pool_name: str, body: schemas.PoolPatch, request: Request) -> schemas.Pool:
    """Change a pool's slots and/or description (operator). Fewer slots than in use: running tries go on,
    no new ones start until enough have finished."""
    with get_db(request).session() as session:
        pool = find_pool(session, pool_name)
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
    with get_db(request).session() as session:
        remove_pool(session, pool_name)


__all__ = ["DEFAULT_POOL", "pool_out", "router"]
