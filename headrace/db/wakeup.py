"""Waking the schedulers of a database when a user changed what they should look at.

A trigger, a clear, a mark or an unpause is written by another process (the
CLI, the API, the UI through the API); without a wake-up the scheduler sees
it on its next full pass, up to ``scheduler.loop_interval`` later. The code
that writes such a change calls :func:`notify_scheduler` in the same session;
the scheduler waits on :meth:`WakeListener.fds` beside its other file
descriptors and makes its next loop a full pass when :meth:`WakeListener.drain`
says a wake arrived.

* PostgreSQL: ``NOTIFY headrace_scheduler`` (``pg_notify``) in the writer's
  transaction, so it is delivered when, and only if, the change commits; every
  scheduler ``LISTEN``\\s on its own autocommit psycopg connection. ``NOTIFY``
  works through PgBouncer in transaction mode, ``LISTEN`` does not (the
  pooler hands the session to other clients between transactions, and the
  notifications go with it): a scheduler whose URL goes through PgBouncer
  (``?pgbouncer=true``) listens on ``database.listen_url``, a direct
  connection to the server, and without one it says so once and finds
  user actions by its full pass every ``scheduler.loop_interval``.
* SQLite: a Unix datagram socket beside the database file
  (``<database>-wake``, next to SQLite's own ``-wal`` and ``-shm``), bound by
  the scheduler that holds the lease; the writer sends one byte after its
  commit. (A path longer than a socket address allows uses the Linux abstract
  namespace, named from a hash of the path.)

A wake is only ever a hint, and sending one never fails the change it
follows: no scheduler, a stale socket left by a SIGKILLed one, a full socket
buffer (a wake is pending already) are all ignored, and the scheduler's
full pass every ``loop_interval`` still finds the change. A listener whose
PostgreSQL connection broke reconnects at most every
:data:`RECONNECT_INTERVAL` seconds and reports a wake when it did (it may
have missed one meanwhile).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import psycopg

    from headrace.db.engine import Database

log = logging.getLogger(__name__)

CHANNEL = "headrace_scheduler"
"""The PostgreSQL notification channel the schedulers listen on."""

RECONNECT_INTERVAL = 10.0
"""Seconds between attempts to reconnect a broken PostgreSQL listener."""

CONNECT_TIMEOUT = 3
"""Seconds a (re)connection of the PostgreSQL listener may take before it is given up until the next try."""

_SENT = "headrace_wake_scheduler"
"""``Session.info`` key: this session already asked for a wake."""

_MAX_SOCKET_PATH = 107
"""Longest filesystem path of a Unix socket address (``sun_path`` is 108 bytes with its NUL)."""


def socket_address(database: str) -> str:
    """The wake-up socket's address for the SQLite file ``database``: ``<real path>-wake``, or an
    abstract-namespace name (leading NUL) derived from that path if it is too long for a socket."""
    path = os.path.realpath(database) + "-wake"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    return "\0headrace-wake-" + hashlib.sha256(os.fsencode(path)).hexdigest()[:32]


def _sqlite_database(engine: Engine) -> str | None:
    """The file of a SQLite engine, or None (not SQLite, or an in-memory database)."""
    if engine.dialect.name != "sqlite":
        return None
    database = make_url(engine.url).database
    return database if database and database != ":memory:" and not database.startswith("file:") else None


def notify_scheduler(session: Session) -> None:
    """Wake the schedulers of ``session``'s database once its transaction commits (at most once per session).

    Never raises for a missing scheduler or a stale socket: the change is written either way.
    """
    if session.info.get(_SENT):
        return
    session.info[_SENT] = True
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.dialect.name == "postgresql":
        # Transactional: delivered at commit, dropped on rollback. Identical notifications of one
        # transaction are folded into one by the server.
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
        return
    database = _sqlite_database(engine)
    if database is None:
        return
    address = socket_address(database)
    event.listen(session, "after_commit", lambda _session: send_wake(address), once=True)


def send_wake(address: str) -> bool:
    """Send one wake datagram to ``address``; True if a listener took it. Never raises."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"w", address)
        return True
    except OSError:  # no scheduler (ENOENT), a stale socket (ECONNREFUSED), a full buffer (EAGAIN: one is pending)
        return False


class WakeListener:
    """The scheduler's end: file descriptors to wait on, and whether a wake arrived.

    Open one with :meth:`open` once the scheduler holds its lease; :meth:`close` it on the way out.
    """

    def __init__(
        self, *, sock: socket.socket | None = None, address: str | None = None, conninfo: str | None = None
    ) -> None:
        self._sock = sock
        self._address = address
        self._inode: tuple[int, int] | None = None
        if sock is not None and address is not None and not address.startswith("\0"):
            st = os.stat(address)
            self._inode = (st.st_dev, st.st_ino)
        self._conninfo = conninfo
        self._pg: psycopg.Connection[Any] | None = None
        self._next_connect = 0.0
        self._missed = False

    @classmethod
    def open(cls, db: Database) -> WakeListener | None:
        """Listen for wakes on ``db``'s database; None if it cannot (an in-memory SQLite database, or a
        PostgreSQL URL through PgBouncer without ``database.listen_url``: logged once).

        A PostgreSQL server that cannot be reached now is retried later (:meth:`fds`).
        """
        engine = db.engine
        if engine.dialect.name == "postgresql":
            wake_url = db.wake_url
            if wake_url is None:
                log.warning(
                    "the database URL goes through PgBouncer, where LISTEN cannot work, and database.listen_url "
                    "is not set: user actions (triggers, clears, unpauses) are seen within scheduler.loop_interval"
                )
                return None
            url = make_url(wake_url).set(drivername="postgresql")
            listener = cls(conninfo=url.render_as_string(hide_password=False))
            listener._connect()
            return listener
        database = _sqlite_database(engine)
        if database is None:
            return None
        address = socket_address(database)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if not address.startswith("\0"):
                _remove_stale_socket(address)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            log.warning(
                "cannot listen for wake-ups on %s (%s); triggers are seen within scheduler.loop_interval", address, exc
            )
            return None
        return cls(sock=sock, address=address)

    def fds(self) -> list[int]:
        """The descriptors to wait on (none while a PostgreSQL listener is disconnected; it reconnects here)."""
        if self._sock is not None:
            return [self._sock.fileno()]
        if self._pg is None and self._conninfo is not None and time.monotonic() >= self._next_connect:
            self._connect()
            self._missed = self._pg is not None  # a wake may have come while disconnected
        if self._pg is None:
            return []
        try:
            return [self._pg.fileno()]
        except Exception as exc:  # noqa: BLE001 - closed under us; a hint must never stop the scheduler
            self._lost(exc)
            return []

    def drain(self, readable: list[int]) -> bool:
        """Consume what arrived on our descriptors among ``readable``; True if that was a wake (or one
        may have been missed: the connection broke or was just remade)."""
        woke, self._missed = self._missed, False
        if self._sock is not None:
            if self._sock.fileno() not in readable:
                return woke
            while True:
                try:
                    self._sock.recv(64)
                except OSError:  # BlockingIOError: drained
                    return True
        if self._pg is None:
            return woke
        try:
            if self._pg.fileno() not in readable:
                return woke
            pgconn = self._pg.pgconn
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                woke = True
        except Exception as exc:  # noqa: BLE001 - the server went away: listen again later, look at everything now
            self._lost(exc)
            return True
        return woke

    def close(self) -> None:
        """Stop listening; remove the socket file if it is still ours."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            if self._address is not None and self._inode is not None:
                try:
                    st = os.stat(self._address)
                    if (st.st_dev, st.st_ino) == self._inode:  # not one a newer scheduler bound meanwhile
                        os.unlink(self._address)
                except OSError:
                    pass
        self._close_pg()

    def _connect(self) -> None:
        import psycopg  # the PostgreSQL driver, already loaded by the engine that made this listener

        assert self._conninfo is not None
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
            conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, bad credentials: triggers wait for the tick
            log.info("cannot listen for wake-ups (%s); retrying in %.0f s", exc, RECONNECT_INTERVAL)
            self._next_connect = time.monotonic() + RECONNECT_INTERVAL
            return
        self._pg = conn

    def _lost(self, exc: Exception) -> None:
        log.info("lost the wake-up connection (%s); reconnecting within %.0f s", exc, RECONNECT_INTERVAL)
        self._close_pg()
        self._next_connect = time.monotonic() + RECONNECT_INTERVAL

    def _close_pg(self) -> None:
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too; it is dropped either way
                pass
            self._pg = None


def _remove_stale_socket(address: str) -> None:
    """Unlink a socket file left at ``address`` (by a scheduler that died); refuse to touch anything else."""
    try:
        st = os.lstat(address)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{address} exists and is not a socket")
    Path(address).unlink(missing_ok=True)


__all__ = ["CHANNEL", "WakeListener", "notify_scheduler", "send_wake", "socket_address"]
