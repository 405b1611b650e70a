"""Running a test through PgBouncer as well: ``@WITH_PGBOUNCER`` on a test that takes ``db_url``.

``.ci/run`` starts Debian's PgBouncer on 127.0.0.1:6432 in transaction mode in
front of the shared PostgreSQL server (``HEADRACE_TEST_PGBOUNCER`` names
another). A test decorated with :data:`WITH_PGBOUNCER` runs on SQLite, on
PostgreSQL, and on the same PostgreSQL database reached through PgBouncer
(``db_url`` ends in ``?pgbouncer=true``; see ``headrace.db.engine``).
"""

from __future__ import annotations

import os

import pytest

PG_SERVER = os.environ.get("HEADRACE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
"""The shared PostgreSQL server (as in ``tests/conftest.py``)."""
PGBOUNCER_SERVER = os.environ.get("HEADRACE_TEST_PGBOUNCER", "postgresql+psycopg://postgres@127.0.0.1:6432")
"""PgBouncer in transaction mode in front of ``PG_SERVER``: any database name maps to the same-named one there."""

WITH_PGBOUNCER = pytest.mark.parametrize("db_url", ["sqlite", "postgresql", "postgresql-pgbouncer"], indirect=True)
"""Parametrize ``db_url`` (and the fixtures on it: ``db``, ``settings``) over the three backends."""


def through_pgbouncer(url: str) -> str:
    """``url`` (a database on ``PG_SERVER``) as reached through PgBouncer, marked ``?pgbouncer=true``."""
    if not url.startswith(PG_SERVER + "/"):
        raise ValueError(f"{url} is not a database on {PG_SERVER}")
    return PGBOUNCER_SERVER + url[len(PG_SERVER) :] + "?pgbouncer=true"
