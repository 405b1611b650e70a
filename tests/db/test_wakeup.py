"""Wake-ups (headrace.db.wakeup): sent on commit only, never failing the writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from headrace.db import wakeup
from headrace.db.engine import Database
from headrace.db.wakeup import WakeListener, notify_scheduler, send_wake, socket_address
from tests.pgbouncer import through_pgbouncer

WAIT = 10.0
"""Longest a test waits for a wake that must come (it comes in milliseconds)."""
QUIET = 0.3
"""How long a test listens for a wake that must not come."""


@pytest.fixture
def listener(db: Database) -> Iterator[WakeListener]:
    opened = WakeListener.open(db)
    assert opened is not None
    yield opened
    opened.close()


def woken(listener: WakeListener, timeout: float) -> bool:
    """Wait as the scheduler does (select, then drain) until a wake or ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        readable, _, _ = select.select(listener.fds(), [], [], max(0.0, deadline - time.monotonic()))
        if listener.drain(readable):
            return True
        if time.monotonic() >= deadline:
            return False


def test_a_committed_notify_wakes_the_listener_once(db: Database, listener: WakeListener) -> None:
    with db.session() as session:
        notify_scheduler(session)
        notify_scheduler(session)  # the same session asks once
        session.execute(text("SELECT 1"))
        assert not woken(listener, 0)  # not before the commit
    assert woken(listener, WAIT)
    assert not woken(listener, QUIET)  # drained: one commit, one wake


def test_a_rolled_back_notify_wakes_nobody(db: Database, listener: WakeListener) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        notify_scheduler(session)
        raise RuntimeError("the change failed")
    assert not woken(listener, QUIET)


def test_notify_without_a_scheduler_never_fails(db: Database) -> None:
    with db.session() as session:  # nobody listens
        notify_scheduler(session)
    if db.is_sqlite:  # a SIGKILLed scheduler's socket file stays behind
        address = socket_address(str(db.engine.url.database))
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(address)
        stale.close()
        assert Path(address).exists()
        with db.session() as session:
            notify_scheduler(session)
        assert not send_wake(address)


def test_a_new_scheduler_replaces_a_stale_socket_and_the_old_one_leaves_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'headrace.db'}")
    first = WakeListener.open(db)
    second = WakeListener.open(db)  # the lease moved on while the first still ran
    assert first is not None and second is not None
    first.close()  # must not remove the second's socket
    with db.session() as session:
        notify_scheduler(session)
    assert woken(second, WAIT)
    second.close()
    assert not Path(socket_address(str(tmp_path / "headrace.db"))).exists()
    db.dispose()


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'headrace.db'}")
    precious = Path(socket_address(str(tmp_path / "headrace.db")))
    precious.write_text("not ours")
    assert WakeListener.open(db) is None  # no wake-ups; the loop_interval still applies
    assert precious.read_text() == "not ours"
    with db.session() as session:
        notify_scheduler(session)
    db.dispose()


def test_a_path_too_long_for_a_socket_uses_the_abstract_namespace(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    address = socket_address(str(deep / "headrace.db"))
    assert address.startswith("\0")
    db = Database(f"sqlite:///{deep / 'headrace.db'}")
    opened = WakeListener.open(db)
    assert opened is not None
    with db.session() as session:
        notify_scheduler(session)
    assert woken(opened, WAIT)
    opened.close()
    db.dispose()


def test_a_postgresql_listener_reconnects_after_losing_its_connection(pg_url: str) -> None:
    db = Database(pg_url)
    listener = WakeListener.open(db)
    assert listener is not None
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {wakeup.CHANNEL}",),
        )
        assert killed.fetchall() == [(True,)]
    assert woken(listener, WAIT)  # the broken connection counts as a wake: one may have been missed
    assert listener.fds() == []  # it reconnects only after RECONNECT_INTERVAL
    listener._next_connect = 0.0  # as if RECONNECT_INTERVAL had passed
    assert len(listener.fds()) == 1  # reconnected
    assert listener.drain([])  # and says a wake may have been missed meanwhile
    with db.session() as session:
        notify_scheduler(session)
    assert woken(listener, WAIT)
    listener.close()
    db.dispose()


def test_through_pgbouncer_the_scheduler_listens_on_listen_url(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """NOTIFY works through PgBouncer in transaction mode, LISTEN does not: the listener takes the direct
    ``listen_url``; without one it says so and there is no listener (the loop_interval still applies)."""
    pooled = through_pgbouncer(pg_url)
    alone = Database(pooled)
    with caplog.at_level("WARNING", logger=wakeup.__name__):
        assert WakeListener.open(alone) is None
    assert "database.listen_url is not set" in caplog.text
    alone.dispose()

    db = Database(pooled, listen_url=pg_url)
    listener = WakeListener.open(db)
    assert listener is not None
    try:
        with db.session() as session:  # written through PgBouncer
            notify_scheduler(session)
        assert woken(listener, WAIT)
    finally:
        listener.close()
        db.dispose()
