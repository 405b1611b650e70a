"""Pages of list endpoints: ``limit`` (default 100, at most ``api.page_size_max``) and ``offset``.

Use ``page: Annotated[Page, Depends(page)]`` on a list route, then
``page.apply(stmt)`` for the rows and :func:`count` for ``total_entries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar, TypeVarTuple

from fastapi import Query, Request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from headrace.exceptions import InvalidRequest

DEFAULT_LIMIT = 100
MAX_OFFSET = 2**31 - 1

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class Page:
    """One page: at most ``limit`` entries from entry ``offset`` (0-based)."""

    limit: int
    offset: int

    def apply(self, stmt: Select[*Ts]) -> Select[*Ts]:
        """``stmt`` with LIMIT/OFFSET (order it first, so pages are stable)."""
        return stmt.limit(self.limit).offset(self.offset)

    def slice(self, items: list[T]) -> list[T]:
        """This page of a list already in memory."""
        return items[self.offset : self.offset + self.limit]


def page(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=100_000, description="Entries per page (at most api.page_size_max).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Entries to skip.")] = 0,
) -> Page:
    """FastAPI dependency: the page asked for. Raises ``InvalidRequest`` (400) above ``api.page_size_max``."""
    maximum = int(request.app.state.settings.get("api", "page_size_max"))
    if limit > maximum:
        raise InvalidRequest(f"limit {limit} is above api.page_size_max ({maximum})")
    return Page(limit=limit, offset=offset)


def count(session: Session, stmt: Select[*Ts]) -> int:
    """Number of rows ``stmt`` (without LIMIT/OFFSET or ORDER BY) returns."""
    return int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


__all__ = ["DEFAULT_LIMIT", "Page", "count", "page"]
