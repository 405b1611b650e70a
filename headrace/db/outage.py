"""Riding out a database outage: which errors mean "the database is away", and retrying through them.

A PostgreSQL restart (``pg_ctl restart -m fast`` drops every connection with
``terminating connection due to administrator command``, then refuses new
ones for a second), a stopped server (``connection refused``) and a SQLite
write lock held past the busy timeout (``database is locked``; 30 s, see
:func:`~headrace.db.engine.sqlite_busy_timeout`) all reach
SQLAlchemy as :class:`~sqlalchemy.exc.OperationalError` or
:class:`~sqlalchemy.exc.InterfaceError`, or as a ``DBAPIError`` whose
``connection_invalidated`` is set. :func:`is_outage` recognises them; anything
else (a constraint, a syntax error, a programming error) is not an outage and
must not be retried.

:func:`retry_through_outage` runs a whole transaction again until it
succeeds or ``tolerance`` seconds have passed, sleeping with capped
exponential backoff between attempts (0.1 s doubling to 5 s). The callable
must be safe to run again: a transaction whose COMMIT was lost with the
connection may or may not have been applied, so it must check what it finds
(every state change here is a compare-and-set, so a repeated one loses
cleanly and the caller can read what won).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")

FIRST_DELAY = 0.1
"""Seconds before the first retry."""
MAX_DELAY = 5.0
"""Longest sleep between two attempts, in seconds."""


def is_outage(exc: BaseException) -> bool:
    """True if ``exc`` means the database could not be reached or locked us out (worth retrying).

    Only connection trouble counts, so that a statement that always fails
    (SQLite's ``no such column`` or ``disk I/O error``, PostgreSQL's
    ``statement_timeout`` or a full disk) is not retried forever: a
    connection SQLAlchemy invalidated; on PostgreSQL an
    ``OperationalError``/``InterfaceError`` without SQLSTATE (connection
    refused, server closed the connection) or with class ``08`` (connection
    exception) or ``57P`` (admin/crash shutdown, cannot connect now); on SQLite
    ``database is locked`` / ``busy``.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        text = str(orig).lower()
        return "locked" in text or "busy" in text
    sqlstate = getattr(orig, "sqlstate", None)
    return sqlstate is None or str(sqlstate).startswith(("08", "57P"))


def backoff(attempt: int) -> float:
    """Seconds to sleep before retry ``attempt`` (1-based): 0.1, 0.2, 0.4, … capped at :data:`MAX_DELAY`."""
    return float(min(MAX_DELAY, FIRST_DELAY * (2 ** max(0, attempt - 1))))


def retry_through_outage(
    fn: Callable[[], T],
    *,
    tolerance: float,
    what: str,
    log: logging.Logger,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Return ``fn()``, calling it again after each outage error for up to ``tolerance`` seconds.

    Logs the first failure as a warning (naming ``what``) and the recovery
    once; the attempts in between are logged at debug level. Errors that are
    not outages (:func:`is_outage`) propagate at once; an outage that lasts
    past ``tolerance`` re-raises the last error.
    """
    deadline = time.monotonic() + tolerance
    attempt = 0
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_outage(exc):
                raise
            attempt += 1
            delay = backoff(attempt)
            if time.monotonic() + delay > deadline:
                log.error(
                    "%s: the database is still unreachable after %.0f s; giving up: %s", what, tolerance, one_line(exc)
                )
                raise
            if attempt == 1:
                log.warning(
                    "%s: the database is unreachable (%s); retrying for up to %.0f s", what, one_line(exc), tolerance
                )
            else:
                log.debug("%s: attempt %d failed: %s", what, attempt, one_line(exc))
            sleep(delay)
            continue
        if attempt:
            log.warning("%s: the database is back after %d retries", what, attempt)
        return result


def one_line(exc: BaseException) -> str:
    """The first line of the driver's message for ``exc`` (for a log line)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


__all__ = ["FIRST_DELAY", "MAX_DELAY", "backoff", "is_outage", "one_line", "retry_through_outage"]
