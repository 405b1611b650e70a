"""Engine and session factory for the metadata database; no module globals.

``make_engine(url)`` gives a SQLAlchemy engine tuned for the backend:

* SQLite: WAL journal, ``synchronous=NORMAL`` (durable across process crashes,
  which is what "any process can be SIGKILLed" needs; see
  https://www.sqlite.org/wal.html), a 30 s busy timeout so concurrent writers
  (scheduler, supervisors, CLI) wait instead of failing, and ``BEGIN IMMEDIATE``
  for write transactions so a reader never has to upgrade to a writer mid-way
  (the cause of SQLITE_BUSY deadlocks).
* PostgreSQL: a small pool with ``pool_pre_ping``.

Pooled connections must not cross a ``fork()``: a forked child that uses a
``Database`` made before the fork keeps the same ``Engine`` object (so its
compiled-statement cache, warmed once in the fork server, survives) but gets a
fresh, empty pool (``engine.dispose(close=False)``, SQLAlchemy's documented
after-fork reset, which leaves the parent's connections untouched).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

READ_ONLY = "headrace_read_only"
"""Execution option set by :meth:`Database.read_session`: on SQLite its transaction begins DEFERRED."""


def is_sqlite(url: str) -> bool:
    """True when ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine for ``url``; creates the folder of a SQLite file if missing."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # ``timeout`` is the driver's busy timeout (sqlite3_busy_timeout, in seconds): no PRAGMA needed for it.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        wal_set = False

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            nonlocal wal_set
            # Let SQLAlchemy, not the driver, open transactions (so BEGIN IMMEDIATE works).
            dbapi_conn.isolation_level = None
            # WAL is a property of the database file (it persists once set), so the engine's first
            # connection sets it and later ones — including those of processes forked after it, such
            # as supervisors, which inherit this engine — skip it. The other two are per connection.
            if not wal_set:
                dbapi_conn.execute("PRAGMA journal_mode=WAL").close()
                wal_set = True
            dbapi_conn.execute("PRAGMA synchronous=NORMAL").close()
            dbapi_conn.execute("PRAGMA foreign_keys=ON").close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Database.read_session() marks its connections: a read-only transaction takes no write lock.
            sql = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            # Straight to the driver (SQLAlchemy's statement execution machinery is most of the cost
            # of a BEGIN); its errors are wrapped as exec_driver_sql would wrap them.
            try:
                conn.connection.driver_connection.execute(sql).close()
            except sqlite3.Error as exc:
                raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc

        return engine
    # A server that vanishes without refusing (a cut network, a host that froze) must fail a connection in
    # seconds, not after the kernel's TCP timeout of minutes: a supervisor blocked in a query enforces no
    # limits, a scheduler blocked in one schedules nothing. libpq's own parameters, passed through psycopg.
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": 30_000,
        },
    )


class Database:
    """An engine plus a session factory, bound to the process that made it.

    ``session()`` is a context manager: it commits on success and rolls back on
    error. After a ``fork()`` the child must not reuse the parent's
    connections; ``Database`` notices the pid changed and gives the same engine
    a fresh pool (keeping its compiled cache).
    """

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.pool_size = pool_size
        self.is_sqlite = is_sqlite(url)
        self._pid = -1
        self._engine: Engine | None = None
        self._sessionmaker: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        pid = os.getpid()
        if self._pid != pid or self._engine is None:
            if self._engine is None:
                self._engine = make_engine(self.url, pool_size=self.pool_size)
                self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
            elif not _pool_is_empty(self._engine):
                # Made before a fork: new pool, same engine (its compiled cache stays warm);
                # the parent's connections are dropped without being closed. (A pool that holds
                # no connection at all — the fork server's, emptied before each fork — is kept.)
                self._engine.dispose(close=False)
            self._pid = pid
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in a transaction; commit at the end, roll back on error."""
        _ = self.engine
        assert self._sessionmaker is not None
        with self._sessionmaker() as session:
            with session.begin():
                yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """Yield a session for reads only; its transaction is rolled back at the end.

        On SQLite it begins DEFERRED (plain ``BEGIN``), so it never waits for
        nor holds the write lock; in WAL mode it reads one consistent snapshot.
        Do not write in it (a write could fail with SQLITE_BUSY instead of waiting).
        """
        engine = self.engine
        assert self._sessionmaker is not None
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            with self._sessionmaker(bind=conn) as session:
                try:
                    yield session
                finally:
                    session.rollback()

    def dispose(self) -> None:
        """Close every pooled connection of this process (and forget the engine)."""
        if self._engine is not None and self._pid == os.getpid():
            # Close the pooled connections; no need for a new pool (Engine.dispose's), the engine is dropped.
            self._engine.pool.dispose()
        self._engine = None
        self._sessionmaker = None
        self._pid = -1

    def release_connections(self) -> None:
        """Close this process's pooled connections but keep the engine and its compiled cache.

        The fork server calls it before each fork, so children inherit no open connection.
        """
        if self._engine is not None and self._pid == os.getpid() and not _pool_is_empty(self._engine):
            self._engine.dispose(close=True)


def _pool_is_empty(engine: Engine) -> bool:
    """True when ``engine``'s pool is a ``QueuePool`` with no connection, checked in or out."""
    pool = engine.pool
    return isinstance(pool, QueuePool) and pool.checkedin() == 0 and pool.checkedout() == 0
