"""Catch-up for alerts: notify the tries and DAG runs that ended while no scheduler saw them.

The :class:`~headrace.observability.notifications.Notifier` writes alerts from
a scheduler's executor events and from the runs that scheduler finishes. An
event no running scheduler saw never reaches it:

* a try whose supervisor (detached from the scheduler) recorded its outcome
  while the scheduler was stopped or restarting;
* a try queued by a scheduler that has since died (its executor events died
  with it), when another scheduler carries on;
* a DAG run finished by a scheduler that died before it emitted the event;
* a DAG run marked ``failed`` / ``success`` from the API, UI or CLI.

:class:`NotificationSweep` — a scheduler housekeeping chore, every
``scheduler.heartbeat_interval``, registered only when an alert channel is
configured — reads the tries that ended in its window in a state that
notifies (``task_try.end_date``, indexed, and ``task_try.state``) and the DAG
runs that ended in it, builds their alerts with the Notifier's own functions
(:func:`~headrace.observability.notifications.try_alert`,
:func:`~headrace.observability.notifications.run_alert`), and writes the ones
whose outbox rows are missing with
:func:`~headrace.observability.notifications.write`: same ``event_key``, same
``ON CONFLICT DO NOTHING``. So an event the event path already wrote is not
written again, and an event both paths see at the same moment is written
exactly once.

**Window.** The first sweep of a scheduler looks back ``alerts.sweep_lookback``
seconds (how long a scheduler outage may last without losing alerts). Each
later sweep looks from the previous sweep's ``now`` minus :data:`OVERLAP`
seconds, which covers a supervisor that commits a little after the
``end_date`` it stamped and clock skew between hosts. A sweep that fails
(database down) keeps its window for the next one.

**Cost.** With nothing to do a sweep is two reads in a read transaction (no
SQLite write lock): the tries in the window (an index range on
``task_try.end_date``) and the runs in a notifying state that ended in the
window. When events are found, one more read looks up their outbox keys
(the unique index on ``event_key``), and a write transaction opens only if
some are missing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.db.engine import Database
from headrace.db.models import DagRun, Notification
from headrace.observability import notifications
from headrace.observability.listener import RunInfo
from headrace.observability.notifications import RUN_EVENTS, TRY_EVENTS, Alert, AlertConfig, run_alert, try_alert
from headrace.observability.tries import tries_ended_since

log = logging.getLogger(__name__)

OVERLAP = 120.0
"""Seconds each later sweep's window reaches back before the previous sweep (late commits, clock skew)."""

_KEYS_PER_QUERY = 500
"""``event_key`` values per ``IN (...)`` lookup."""


def runs_ended_since(session: Session, since: datetime, states: Collection[str]) -> list[RunInfo]:
    """The DAG runs in one of ``states`` with ``end_date >= since`` (UTC-aware), oldest first."""
    if not states:
        return []
    rows = session.execute(
        select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date, DagRun.logical_date)
        .where(DagRun.state.in_(sorted(states)), DagRun.end_date >= since)
        .order_by(DagRun.end_date, DagRun.id)
    ).all()
    return [
        RunInfo(
            dag_id=r.dag_id,
            run_id=r.run_id,
            state=r.state,
            start_date=r.start_date,
            end_date=r.end_date,
            logical_date=r.logical_date,
        )
        for r in rows
    ]


def _existing_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        found.update(
            session.scalars(
                select(Notification.event_key).where(Notification.event_key.in_(keys[start : start + _KEYS_PER_QUERY]))
            )
        )
    return found


def missing_alerts(db: Database, config: AlertConfig, since: datetime) -> list[tuple[Alert, datetime]]:
    """``(alert, end_date)`` of every try / DAG run that ended at or after ``since`` in a state that notifies
    and lacks an outbox row on some configured channel. Reads only (one read transaction)."""
    try_states = [e for e in TRY_EVENTS if config.wants(e)]
    run_states = [state for event, state in RUN_EVENTS.items() if config.wants(event)]
    if not try_states and not run_states:
        return []
    found: list[tuple[Alert, datetime]] = []
    with db.read_session() as session:
        for info in tries_ended_since(session, since, try_states):
            alert = try_alert(info)
            if alert is not None and info.end_date is not None:
                found.append((alert, info.end_date))
        for run in runs_ended_since(session, since, run_states):
            if run.end_date is not None:
                found.append((run_alert(run), run.end_date))
        if not found:
            return []
        keys = [f"{channel}|{alert.event_key}" for alert, _ in found for channel in config.channels]
        existing = _existing_keys(session, keys)
    return [
        (alert, when)
        for alert, when in found
        if any(f"{channel}|{alert.event_key}" not in existing for channel in config.channels)
    ]


class NotificationSweep:
    """The housekeeping chore: ``sweep(now)`` writes the missing notifications of its window; returns rows written.

    ``lookback`` (seconds) is the first sweep's window; later sweeps start
    ``overlap`` seconds before the previous sweep's ``now``. Does nothing (no
    query) when ``config`` has no channel or no event of a try / run notifies.
    """

    def __init__(self, db: Database, config: AlertConfig, *, lookback: float, overlap: float = OVERLAP) -> None:
        self.db, self.config = db, config
        self.lookback, self.overlap = timedelta(seconds=lookback), timedelta(seconds=overlap)
        self.since: datetime | None = None
        """Start of the next sweep's window (None: ``now - lookback``)."""

    def __call__(self, now: datetime) -> int:
        if not self.config.channels:
            return 0
        since = self.since if self.since is not None else now - self.lookback
        written = 0
        missing = missing_alerts(self.db, self.config, since)
        if missing:
            with self.db.session() as session:
                for alert, when in missing:
                    written += notifications.write(session, self.config, alert, when)
            if written:  # also when the sweep reads an ended try before its executor event arrives
                log.info(
                    "sweep wrote %d notification(s) for tries / DAG runs that ended since %s",
                    written,
                    since.isoformat(),
                )
        self.since = now - self.overlap
        return written


__all__ = ["OVERLAP", "NotificationSweep", "missing_alerts", "runs_ended_since"]
