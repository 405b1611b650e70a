"""The declarative base of headrace's tables and the column types they share (see :mod:`headrace.db.models`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and returned timezone-aware (UTC).

    Raises ``ValueError`` when handed a naive datetime: every datetime headrace
    stores must say its timezone.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database; use an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every headrace table."""

    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON}


ID = BigInteger().with_variant(Integer(), "sqlite")
"""Primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite."""

NEVER_REUSED: dict[str, Any] = {"sqlite_autoincrement": True}
"""Table option of tables whose ids are held outside the database (cookies, URLs, supervisors, Celery
messages): SQLite's ``AUTOINCREMENT``, so a deleted row's id is never handed out again (without it SQLite
reuses the largest id once that row is deleted). PostgreSQL sequences never reuse ids anyway."""


__all__ = ["ID", "NEVER_REUSED", "Base", "UtcDateTime"]
