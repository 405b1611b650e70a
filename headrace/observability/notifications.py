"""The notification outbox: one ``notification`` row per event and channel, written once.

Configured in the ``alerts`` section (no code needed; see ``docs/alerts.md``):
``notify_on`` lists the events that notify —

=================  ==========================================================
event              when
=================  ==========================================================
``failed``         a task instance's try ended and it will not retry (final failure)
``up_for_retry``   a try failed and the task instance will be retried
``run_failed``     a DAG run ended ``failed``
``run_success``    a DAG run ended ``success``
``deadline_missed`` a DAG run or task instance missed its ``deadline``
=================  ==========================================================

— and the channels are ``email`` (when ``email_to`` is set) and ``webhook``
(when ``webhook_url`` is set). With no channel configured nothing is written.

Each row has a unique ``event_key`` ``<channel>|<event>|<dag_id>|<run_id>|<task_id>|<try_number>``
(``…|<try_number>|<map_index>`` for an index of a mapped task, so each failing index alerts), inserted with ``ON CONFLICT DO NOTHING``: the same event seen twice (two
schedulers, a restart that re-reads it) still notifies exactly once per
channel. :mod:`~headrace.observability.delivery` sends pending rows.

:class:`Notifier` is the listener that writes rows for try and run events
(:func:`try_alert`, :func:`run_alert`); the scheduler's catch-up sweep
(:mod:`~headrace.observability.sweep`) writes the same rows, with the same
keys, for tries and runs that ended while no scheduler saw them. Deadline
misses are written by :mod:`~headrace.observability.deadlines` in the
transaction that records the miss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Notification
from headrace.observability.listener import Listener, RunInfo, TryInfo

log = logging.getLogger(__name__)

EVENTS = ("failed", "up_for_retry", "run_failed", "run_success", "deadline_missed")
"""Events ``alerts.notify_on`` may name."""


@dataclass(frozen=True)
class AlertConfig:
    """The ``alerts`` settings the outbox writer needs."""

    notify_on: frozenset[str]
    channels: tuple[str, ...]
    """``email`` and/or ``webhook``: the channels that are configured."""
    base_url: str
    """Start of links to the UI, without a trailing slash."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertConfig:
        """Read ``alerts.*`` and ``api.base_url`` (or ``http://api.host:api.port``). Unknown events are ignored."""
        wanted = {e.strip() for e in settings.get_str("alerts", "notify_on").split(",") if e.strip()}
        unknown = wanted - set(EVENTS)
        if unknown:
            log.warning("alerts.notify_on names unknown events %s; known: %s", sorted(unknown), ", ".join(EVENTS))
        channels = tuple(
            c
            for c, key in (("email", "email_to"), ("webhook", "webhook_url"))
            if str(settings.get("alerts", key)).strip()
        )
        base = settings.get_str("api", "base_url").rstrip("/")
        if not base:
            host = settings.get_str("api", "host")
            host = "127.0.0.1" if host in ("0.0.0.0", "") else host
            base = f"http://{host}:{settings.get('api', 'port')}"
        return cls(frozenset(wanted & set(EVENTS)), channels, base)

    def wants(self, event: str) -> bool:
        """True if ``event`` notifies and a channel is configured."""
        return bool(self.channels) and event in self.notify_on


@dataclass(frozen=True)
class Alert:
    """What one notification says (rendered into subject and body)."""

    event: str
    dag_id: str
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    map_index: int | None = None
    """The index of a mapped task's instance (None, or ``-1``, for a task that is not mapped)."""
    state: str | None = None
    end_reason: str | None = None
    error: str | None = None
    detail: str | None = None
    """Extra line, e.g. the deadline that was missed."""

    @property
    def event_key(self) -> str:
        """Identifies the event (without the channel); an index of a mapped task adds ``|<map_index>``."""
        parts = [self.event, self.dag_id, self.run_id or "", self.task_id or "", str(self.try_number or "")]
        if self.mapped:
            parts.append(str(self.map_index))
        return "|".join(parts)

    @property
    def mapped(self) -> bool:
        """True for an alert about one index of a mapped task."""
        return self.map_index is not None and self.map_index >= 0

    def link(self, base_url: str) -> str:
        """The UI page of the task instance (or of the DAG run / DAG)."""
        url = f"{base_url}/dags/{quote(self.dag_id, safe='')}"
        if self.run_id:
            url += f"/runs/{quote(self.run_id, safe='')}"
            if self.task_id:
                url += f"/tasks/{quote(self.task_id, safe='')}"
                if self.mapped:
                    url += f"?map_index={self.map_index}"
        return url

    def subject(self) -> str:
        """One line, e.g. ``[headrace] failed: etl.load (run manual__…, try 2)``; ``etl.load[3]`` for map index 3."""
        what = f"{self.dag_id}.{self.task_id}" if self.task_id else f"DAG {self.dag_id}"
        if self.mapped:
            what += f"[{self.map_index}]"
        extra = [f"run {self.run_id}"] if self.run_id else []
        if self.try_number:
            extra.append(f"try {self.try_number}")
        return f"[headrace] {self.event}: {what}" + (f" ({', '.join(extra)})" if extra else "")

    def body(self, base_url: str) -> str:
        """Plain text: one ``Name: value`` line per known field, then the link."""
        lines = [f"Event: {self.event}", f"DAG: {self.dag_id}"]
        for name, value in (
            ("Run", self.run_id),
            ("Task", self.task_id),
            ("Map index", self.map_index if self.mapped else None),
            ("Try", self.try_number),
            ("State", self.state),
            ("End reason", self.end_reason),
            ("Error", self.error),
            ("Detail", self.detail),
        ):
            if value not in (None, ""):
                lines.append(f"{name}: {value}")
        lines.append(f"Link: {self.link(base_url)}")
        return "\n".join(lines) + "\n"


TRY_EVENTS = ("failed", "up_for_retry")
"""Events of a try: the state it left its task instance in."""
RUN_EVENTS = {"run_failed": "failed", "run_success": "success"}
"""Events of a DAG run, with the run state each stands for."""


def try_alert(info: TryInfo) -> Alert | None:
    """The alert for an ended try (``failed`` / ``up_for_retry``), or None for a state that never notifies.

    Used by the :class:`Notifier` (executor events) and by the catch-up sweep
    (:mod:`~headrace.observability.sweep`), so both write the same ``event_key``.
    """
    if info.state not in TRY_EVENTS:
        return None
    return Alert(
        event=info.state,
        dag_id=info.dag_id,
        run_id=info.run_id,
        task_id=info.task_id,
        try_number=info.try_number,
        map_index=info.map_index,
        state=info.state,
        end_reason=info.end_reason,
        error=info.error,
    )


def run_alert(run: RunInfo) -> Alert:
    """The alert for a DAG run that ended (``run_failed`` / ``run_success``)."""
    return Alert(event=f"run_{run.state}", dag_id=run.dag_id, run_id=run.run_id, state=run.state)


def insert_ignore(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``notification`` rows, skipping any whose ``event_key`` exists; return how many were inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    maker: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = maker(Notification).on_conflict_do_nothing(index_elements=["event_key"]).returning(Notification.id)
    inserted = 0
    for row in rows:  # one statement per row: RETURNING tells what was new (psycopg gives no rowcount here)
        inserted += session.execute(stmt.values(**row)).first() is not None
    return inserted


def write(session: Session, config: AlertConfig, alert: Alert, now: datetime) -> int:
    """Write ``alert`` to the outbox once per configured channel (if its event notifies); return rows inserted."""
    if not config.wants(alert.event):
        return 0
    subject, body = alert.subject(), alert.body(config.base_url)
    rows = [
        dict(
            event_key=f"{channel}|{alert.event_key}",
            channel=channel,
            event=alert.event,
            dag_id=alert.dag_id,
            run_id=alert.run_id,
            task_id=alert.task_id,
            try_number=alert.try_number,
            subject=subject,
            body=body,
            created_at=now,
            attempts=0,
        )
        for channel in config.channels
    ]
    return insert_ignore(session, rows)


class Notifier(Listener):
    """Writes outbox rows for failed / retried tries and finished runs; ``wake()`` after a write.

    ``wake`` is typically :meth:`headrace.observability.delivery.Deliverer.wake`.
    """

    def __init__(
        self,
        db: Database,
        config: AlertConfig,
        *,
        wake: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db, self.config, self.wake = db, config, wake
        self.clock = clock

    def _write(self, alert: Alert, now: datetime | None) -> None:
        if not self.config.wants(alert.event):
            return
        when = now if now is not None else (self.clock() if self.clock else datetime.now().astimezone())
        with self.db.session() as session:
            written = write(session, self.config, alert, when)
        if written and self.wake is not None:
            self.wake()

    def on_try_finished(self, info: TryInfo) -> None:
        alert = try_alert(info)
        if alert is not None:
            self._write(alert, info.end_date)

    def on_run_finished(self, run: RunInfo) -> None:
        self._write(run_alert(run), run.end_date)


__all__ = [
    "EVENTS",
    "RUN_EVENTS",
    "TRY_EVENTS",
    "Alert",
    "AlertConfig",
    "Notifier",
    "insert_ignore",
    "run_alert",
    "try_alert",
    "write",
]
