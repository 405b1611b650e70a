"""Engine and session factory for the metadata database; no module globals.

``make_engine(url)`` gives a SQLAlchemy engine tuned for the backend:

* SQLite: WAL journal, ``synchronous=NORMAL`` (durable across process crashes,
  which is what "any process can be SIGKILLed" needs; see
  https://www.sqlite.org/wal.html), a busy timeout so concurrent writers
  (scheduler, supervisors, CLI) wait instead of failing (30 s, or the URL's
  ``?timeout=<seconds>``, the driver's own parameter), and ``BEGIN IMMEDIATE``
  for write transactions so a reader never has to upgrade to a writer mid-way
  (the cause of SQLITE_BUSY deadlocks).
* PostgreSQL: a pool of ``pool_size`` connections plus ``max_overflow``
  opened when all are busy, replaced after ``pool_recycle`` seconds, each
  pinged before it is handed out (``pool_pre_ping``) — the scheduler's only
  after sitting idle in the pool for over ``PING_AFTER_IDLE`` seconds. Read sessions run in autocommit: no ``BEGIN`` and
  no ``ROLLBACK`` round trips (each statement reads its own snapshot, as
  under READ COMMITTED in a transaction).

PgBouncer in transaction mode: a server connection serves one transaction of
a client, then another client's, so nothing may rely on the state of a
session — and nothing in headrace does: no ``SET``, no session advisory
locks, no temporary tables, no ``WITH HOLD`` cursors; ``NOTIFY``
(``pg_notify``) is transactional and works; ``LISTEN`` does not (the scheduler listens on ``database.listen_url`` instead,
see :mod:`headrace.db.wakeup`). Prepared statements are session state too:
psycopg prepares a statement after its fifth execution, which PgBouncer before
1.21 cannot route. Mark such a URL with the query parameter ``pgbouncer=true``
(``postgresql+psycopg://user@pgbouncer-host:6432/headrace?pgbouncer=true``):
the parameter is removed before connecting and psycopg's automatic prepare is
turned off (``prepare_threshold=None``). With PgBouncer ≥ 1.21 and
``max_prepared_statements`` set, the parameter may be left out for speed —
but ``LISTEN`` still needs ``listen_url``.

Pooled connections must not cross a ``fork()``: a forked child that uses a
``Database`` made before the fork keeps the same ``Engine`` object (so its
compiled-statement cache, warmed once in the fork server, survives) but gets a
fresh, empty pool (``engine.dispose(close=False)``, SQLAlchemy's documented
after-fork reset, which leaves the parent's connections untouched).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from headrace.exceptions import ConfigError

if TYPE_CHECKING:
    from headrace.config import Settings

PING_AFTER_IDLE = 1.0
"""Seconds one of the scheduler's pooled PostgreSQL connections may sit in the pool and still be handed out
without a ping first.

SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip per transaction, most of them, in the
scheduler's loop, for a connection used a few milliseconds before. The scheduler pings only a connection
idle longer than this. One broken by a restart within this second of its last use fails its next
statement, and the scheduler rides that out as it does any outage (``Scheduler.ride_out_outage``). Other
processes (the API server, supervisors, the CLI) keep pinging at every checkout: they do not retry a
failed request.
"""

_RETURNED_AT = "headrace_returned_at"

READ_ONLY = "headrace_read_only"
"""Execution option set by :meth:`Database.read_session`: on SQLite its transaction begins DEFERRED."""


def is_sqlite(url: str) -> bool:
    """True when ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


PGBOUNCER_PARAMETER = "pgbouncer"
"""URL query parameter saying the URL goes through PgBouncer in transaction mode (``?pgbouncer=true``)."""


def split_pgbouncer(url: str) -> tuple[str, bool]:
    """``url`` without its ``pgbouncer`` query parameter, and whether it was true.

    Raises ``ValueError`` naming the parameter for a value other than true/false (1/0, yes/no).
    """
    parsed = make_url(url)
    raw = parsed.query.get(PGBOUNCER_PARAMETER)
    if raw is None:
        return url, False
    value = (raw[-1] if isinstance(raw, tuple) else raw).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"database URL parameter {PGBOUNCER_PARAMETER}={value!r}: expected true or false")
    stripped = parsed.difference_update_query([PGBOUNCER_PARAMETER]).render_as_string(hide_password=False)
    return stripped, value in ("true", "1", "yes")


SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite connection waits for another's write lock before ``database is locked``, unless the URL
sets ``timeout`` (``sqlite:///path/headrace.db?timeout=10``)."""


def sqlite_busy_timeout(url: str) -> float:
    """The busy timeout of SQLite URL ``url`` in seconds: its ``timeout`` parameter, else
    :data:`SQLITE_BUSY_TIMEOUT`. Raises ``ConfigError`` naming the parameter if it is not a number ≥ 0."""
    value = make_url(url).query.get("timeout")
    if value is None:
        return SQLITE_BUSY_TIMEOUT
    try:
        seconds = float(value if isinstance(value, str) else value[-1])
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise ConfigError(
            f"setting database.url: timeout={value!r} is not a number of seconds ≥ 0 (SQLite's busy timeout)",
            key="database.url",
        )
    return seconds


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int | None = None,
    pool_recycle: int = -1,
    application_name: str | None = None,
    ping_after_idle: float = 0.0,
) -> Engine:
    """Create an engine for ``url``; creates the folder of a SQLite file if missing.

    PostgreSQL only: ``pool_size`` connections kept, ``max_overflow`` more opened
    when all are busy (default ``2 * pool_size``), each replaced ``pool_recycle``
    seconds after it was opened (-1: never); ``application_name`` is shown in
    ``pg_stat_activity``; ``ping_after_idle`` > 0: a connection is pinged only after sitting that many seconds
    in the pool (see ``PING_AFTER_IDLE``), else at every checkout. A ``?pgbouncer=true`` URL turns psycopg's automatic
    prepare off (see the module docstring). Raises ``ValueError`` for a bad
    ``pgbouncer`` parameter, ``ConfigError`` for a SQLite URL whose ``timeout`` is not a number of seconds.
    """
    url, pgbouncer = split_pgbouncer(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # ``timeout`` is the driver's busy timeout (sqlite3_busy_timeout, in seconds): no PRAGMA needed for it.
        engine = create_engine(url, connect_args={"timeout": sqlite_busy_timeout(url), "check_same_thread": False})
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
    connect_args: dict[str, Any] = {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }
    if application_name is not None:
        connect_args["application_name"] = application_name
    if pgbouncer:
        connect_args["prepare_threshold"] = None  # a prepared statement lives in one server session
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2 if max_overflow is None else max_overflow,
        pool_recycle=pool_recycle,
        pool_pre_ping=ping_after_idle <= 0,
        connect_args=connect_args,
    )
    if ping_after_idle <= 0:
        return engine

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < ping_after_idle:
            return  # new, or back in the pool a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is broken: {exc}") from exc  # the pool opens another

    return engine


class Database:
    """An engine plus a session factory, bound to the process that made it.

    ``session()`` is a context manager: it commits on success and rolls back on
    error. After a ``fork()`` the child must not reuse the parent's
    connections; ``Database`` notices the pid changed and gives the same engine
    a fresh pool (keeping its compiled cache).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int | None = None,
        pool_recycle: int = -1,
        application_name: str | None = None,
        listen_url: str = "",
        ping_after_idle: float = 0.0,
    ) -> None:
        """``url`` may end in ``?pgbouncer=true`` (see the module docstring); the pool arguments and
        ``ping_after_idle`` are :func:`make_engine`'s. ``listen_url``: a direct PostgreSQL URL for ``LISTEN`` (empty: ``url``
        unless it goes through PgBouncer). Raises ``ValueError`` for a bad ``pgbouncer`` parameter."""
        self.url = url
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.pool_recycle = pool_recycle
        self.application_name = application_name
        self.ping_after_idle = ping_after_idle
        self.pgbouncer = split_pgbouncer(url)[1]
        self.listen_url = listen_url
        self.is_sqlite = is_sqlite(url)
        self._pid = -1
        self._engine: Engine | None = None
        self._sessionmaker: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        pid = os.getpid()
        if self._pid != pid or self._engine is None:
            if self._engine is None:
                self._engine = make_engine(
                    self.url,
                    pool_size=self.pool_size,
                    max_overflow=self.max_overflow,
                    pool_recycle=self.pool_recycle,
                    application_name=self.application_name,
                    ping_after_idle=self.ping_after_idle,
                )
                self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
            elif not _pool_is_empty(self._engine):
                # Made before a fork: new pool, same engine (its compiled cache stays warm);
                # the parent's connections are dropped without being closed. (A pool that holds
                # no connection at all — the fork server's, emptied before each fork — is kept.)
                self._engine.dispose(close=False)
            self._pid = pid
        return self._engine

    @classmethod
    def from_settings(cls, settings: Settings, *, role: str, single_connection: bool = False) -> Database:
        """The ``Database`` of ``settings``' ``[database]`` section for a process of kind ``role``
        (``"scheduler"``, ``"api"``, ``"supervisor"`` …: its ``application_name`` is ``headrace-<role>``).

        ``single_connection``: one connection and no overflow, whatever ``pool_size`` says — what every
        supervisor uses (it runs one transaction at a time), so a worker host running N tries holds at
        most N connections to the database (or to its PgBouncer). The ``"scheduler"``'s connections are pinged
        only after ``PING_AFTER_IDLE`` seconds idle, everyone else's at every checkout.
        """
        if single_connection:
            pool_size, max_overflow = 1, 0
        else:
            pool_size = settings.get_int("database", "pool_size")
            max_overflow = settings.get_int("database", "max_overflow")
        return cls(
            settings.database_url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=settings.get_int("database", "pool_recycle"),
            application_name=f"headrace-{role}",
            listen_url=settings.get_str("database", "listen_url"),
            ping_after_idle=PING_AFTER_IDLE if role == "scheduler" else 0.0,
        )

    @property
    def wake_url(self) -> str | None:
        """The URL schedulers ``LISTEN`` on: ``listen_url``, else ``url`` if it is direct; None when the only
        URL goes through PgBouncer (``LISTEN`` cannot work there) or the database is SQLite."""
        if self.is_sqlite:
            return None
        if self.listen_url:
            return self.listen_url
        return None if self.pgbouncer else split_pgbouncer(self.url)[0]

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
        """Yield a session for reads only; its transaction is rolled back at the end (PostgreSQL: autocommit).

        On SQLite it begins DEFERRED (plain ``BEGIN``), so it never waits for
        nor holds the write lock; in WAL mode it reads one consistent snapshot.
        Do not write in it (a write could fail with SQLITE_BUSY instead of waiting).
        """
        engine = self.engine
        assert self._sessionmaker is not None
        # PostgreSQL: autocommit, so no BEGIN and no ROLLBACK round trip. Under READ COMMITTED each
        # statement reads its own snapshot in a transaction too, so nothing a reader sees changes.
        options: dict[str, Any] = (
            {READ_ONLY: True} if self.is_sqlite else {READ_ONLY: True, "isolation_level": "AUTOCOMMIT"}
        )
        with engine.connect().execution_options(**options) as conn:
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
