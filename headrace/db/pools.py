"""Pools: how many slots each pool's queued and running task instances take, and the rules for changing pools.

The REST API (``/api/v1/pools``) and the CLI (``headrace pools``) share these, so both refuse the same things:
``default_pool`` cannot be deleted, nor a pool whose slots are taken, and slots are never negative but for
:data:`UNLIMITED` (-1, as in Airflow: the pool never holds a task back).
Every function takes an open session and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headrace.db.models import Pool, TaskInstance
from headrace.exceptions import Conflict, InvalidRequest, NotFound
from headrace.states import TaskInstanceState

DEFAULT_POOL = "default_pool"
"""The pool of tasks that name none (Airflow's name); it cannot be deleted."""
UNLIMITED = -1
"""``slots`` of a pool without a limit (Airflow's -1)."""
MAX_SLOTS = 2**31 - 1
"""The most slots a pool may have (the column is a 32-bit integer)."""
MAX_NAME = 256
"""The longest pool name (characters)."""


@dataclass(frozen=True)
class PoolSlots:
    """A pool with how its slots are used now."""

    name: str
    slots: int
    """Slots the pool has (tries of its tasks take ``pool_slots`` each); :data:`UNLIMITED` (-1): no limit."""
    description: str | None
    running: int
    """Slots taken by running task instances."""
    queued: int
    """Slots taken by queued task instances."""

    @property
    def occupied(self) -> int:
        """Slots taken (running + queued)."""
        return self.running + self.queued

    @property
    def unlimited(self) -> bool:
        """The pool has no limit (``slots`` is :data:`UNLIMITED`)."""
        return self.slots == UNLIMITED

    @property
    def open(self) -> int:
        """Slots free now (negative when the pool was shrunk below what is in use); -1 for an unlimited pool."""
        return UNLIMITED if self.unlimited else self.slots - self.occupied

    @property
    def open_text(self) -> str:
        """:attr:`open` for people: ``"unlimited"`` for an unlimited pool."""
        return "unlimited" if self.unlimited else str(self.open)


def usage(session: Session, names: list[str]) -> dict[tuple[str, str], int]:
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


def slots_of(pool: Pool, used: dict[tuple[str, str], int]) -> PoolSlots:
    """``pool`` with its slots in use from ``used`` (see :func:`usage`)."""
    return PoolSlots(
        name=pool.name,
        slots=pool.slots,
        description=pool.description,
        running=used.get((pool.name, TaskInstanceState.RUNNING.value), 0),
        queued=used.get((pool.name, TaskInstanceState.QUEUED.value), 0),
    )


def list_pools(session: Session) -> list[PoolSlots]:
    """Every pool, sorted by name, with its slots in use."""
    pools = list(session.scalars(select(Pool).order_by(Pool.name)))
    used = usage(session, [p.name for p in pools])
    return [slots_of(p, used) for p in pools]


def get_pool(session: Session, name: str) -> Pool:
    """The pool ``name``; raises ``NotFound`` (404)."""
    pool = session.get(Pool, name)
    if pool is None:
        raise NotFound(f"pool {name!r} not found")
    return pool


def set_pool(session: Session, name: str, slots: int, description: str | None) -> Pool:
    """Create pool ``name`` or change its slots and description (Airflow's ``pools set``).

    Raises ``InvalidRequest`` (400) for an empty or over-long name (more than :data:`MAX_NAME` characters, or
    with a NUL) or ``slots`` outside -1 (:data:`UNLIMITED`) … :data:`MAX_SLOTS`.
    """
    if not name.strip() or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidRequest(f"a pool name is 1 to {MAX_NAME} characters without NUL, got {name[:40]!r}")
    if not UNLIMITED <= slots <= MAX_SLOTS:
        raise InvalidRequest(f"pool {name!r}: slots must be -1 (unlimited) or 0 to {MAX_SLOTS}, got {slots}")
    pool = session.get(Pool, name)
    if pool is None:
        pool = Pool(name=name, slots=slots, description=description)
        session.add(pool)
    else:
        pool.slots, pool.description = slots, description
    session.flush()
    return pool


def delete_pool(session: Session, name: str) -> None:
    """Delete pool ``name``.

    Raises ``InvalidRequest`` (400) for ``default_pool``, ``NotFound`` (404) for an unknown pool and
    ``Conflict`` (409) while queued or running task instances take its slots.
    """
    if name == DEFAULT_POOL:
        raise InvalidRequest("default_pool cannot be deleted")
    pool = get_pool(session, name)
    busy = sum(usage(session, [name]).values())
    if busy:
        raise Conflict(f"pool {name!r} has {busy} slot(s) taken by queued or running task instances")
    session.delete(pool)


__all__ = [
    "DEFAULT_POOL",
    "MAX_NAME",
    "MAX_SLOTS",
    "PoolSlots",
    "delete_pool",
    "get_pool",
    "list_pools",
    "set_pool",
    "slots_of",
    "usage",
]
