"""Delivery of the notification outbox: email over SMTP and Slack-compatible webhooks.

:func:`deliver_pending` sends the rows that are due, one at a time:

1. **claim** — compare-and-set ``attempts = n + 1`` where ``attempts = n`` and
   ``sent_at IS NULL``, with ``next_attempt_at`` pushed past the send timeout,
   committed before sending: two deliverers (two schedulers) never send the
   same attempt;
2. **send** — ``email`` rows with :func:`headrace.mail.send_message` to
   ``alerts.smtp_host:smtp_port`` (SMTPS with ``smtp_ssl``, STARTTLS with
   ``smtp_starttls``, AUTH when ``smtp_user`` is set) to every address in
   ``email_to``; ``webhook`` rows as an httpx ``POST`` of Slack-compatible JSON
   ``{"text": …, "blocks": […]}`` to every URL in ``webhook_url`` (any non-2xx
   is a failure);
3. **record** — ``sent_at`` on success; else ``last_error`` and
   ``next_attempt_at = now + 2 s · 2^(attempts-1)`` (capped at 5 min). After
   ``MAX_ATTEMPTS`` failed attempts a row is left unsent, with its last error.

**Why a thread.** :class:`Deliverer` runs this in a daemon thread of the
scheduler process: sending is waiting on the network (the GIL is released),
so the scheduler loop does not slow down; the thread wakes at once when the
:class:`~headrace.observability.notifications.Notifier` writes a row
(:meth:`Deliverer.wake`) and otherwise every second for retries and rows
other processes wrote. It uses its own DB sessions from the engine's pool.
A forked child per batch would need its own engine and a reaper in the loop,
for no gain: the work is I/O, not CPU, and a crash of the thread's send
loses nothing — the row stays in the outbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import or_, select, update

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Notification
from headrace.mail import SmtpServer, send_message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Attempts per notification before it is given up (left unsent with ``last_error``)."""
BACKOFF_BASE = 2.0
"""Seconds before the second attempt; doubles each time."""
BACKOFF_CAP = 300.0
"""Longest wait between attempts, seconds."""


def backoff(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts (``attempts`` ≥ 1)."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class DeliveryConfig:
    """The ``alerts`` settings delivery needs."""

    email_to: tuple[str, ...]
    smtp: SmtpServer
    """The SMTP server, read by :meth:`SmtpServer.from_settings` (the one reader of the ``[alerts]`` SMTP keys;
    ``from_email`` is ``alerts.email_from``, ``timeout`` is ``alerts.timeout``)."""
    webhook_urls: tuple[str, ...]

    @property
    def email_from(self) -> str:
        """The sender of alert emails (``alerts.email_from``; empty when unset)."""
        return self.smtp.from_email or ""

    @property
    def timeout(self) -> float:
        """Seconds one SMTP session or one webhook POST may take (``alerts.timeout``)."""
        return self.smtp.timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        """Read the ``alerts`` section."""

        def split(key: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in settings.get_str("alerts", key).split(",") if x.strip())

        return cls(
            email_to=split("email_to"), smtp=SmtpServer.from_settings(settings), webhook_urls=split("webhook_url")
        )


def send_email(config: DeliveryConfig, subject: str, body: str) -> None:
    """Send one plain-text email to ``config.email_to``; raises ``OSError`` / ``smtplib.SMTPException``."""
    message = EmailMessage()
    message["From"] = config.email_from
    message["To"] = ", ".join(config.email_to)
    message["Subject"] = subject
    message.set_content(body)
    send_message(config.smtp, message)


def webhook_payload(subject: str, body: str) -> dict[str, Any]:
    """Slack-compatible JSON: ``text`` (subject and body) plus a header and a section block."""
    return {
        "text": f"{subject}\n{body}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}},
        ],
    }


def send_webhook(config: DeliveryConfig, subject: str, body: str, *, client: httpx.Client | None = None) -> None:
    """POST :func:`webhook_payload` to every ``config.webhook_urls``; raises ``httpx.HTTPError`` on failure."""
    payload = webhook_payload(subject, body)
    own = client is None
    http = client or httpx.Client(timeout=config.timeout)
    try:
        for url in config.webhook_urls:
            http.post(url, json=payload).raise_for_status()
    finally:
        if own:
            http.close()


def _send(config: DeliveryConfig, row: Notification) -> None:
    if row.channel == "email":
        if not config.email_to:
            raise ValueError("alerts.email_to is empty")
        send_email(config, row.subject, row.body)
    elif row.channel == "webhook":
        if not config.webhook_urls:
            raise ValueError("alerts.webhook_url is empty")
        send_webhook(config, row.subject, row.body)
    else:
        raise ValueError(f"unknown notification channel {row.channel!r}")


def pending(db: Database, now: datetime, *, limit: int = 50) -> Sequence[Notification]:
    """Unsent rows due at ``now`` with attempts left, oldest first."""
    with db.read_session() as session:
        rows = session.scalars(
            select(Notification)
            .where(
                Notification.sent_at.is_(None),
                Notification.attempts < MAX_ATTEMPTS,
                or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
            )
            .order_by(Notification.id)
            .limit(limit)
        ).all()
        session.expunge_all()
    return rows


def deliver_pending(db: Database, config: DeliveryConfig, now: datetime | None = None) -> int:
    """Claim, send and record every due row (see the module docstring); return how many were sent."""
    when = now or datetime.now(UTC)
    sent = 0
    for row in pending(db, when):
        with db.session() as session:
            won = (
                session.execute(
                    update(Notification)
                    .where(
                        Notification.id == row.id, Notification.attempts == row.attempts, Notification.sent_at.is_(None)
                    )
                    .values(attempts=row.attempts + 1, next_attempt_at=when + timedelta(seconds=2 * config.timeout + 5))
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                == 1
            )
        if not won:
            continue
        attempts = row.attempts + 1
        try:
            _send(config, row)
        except Exception as exc:  # noqa: BLE001 — any failure is recorded and retried
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            done = datetime.now(UTC)
            log.warning(
                "notification %d (%s, %s) attempt %d failed: %s", row.id, row.channel, row.event, attempts, error
            )
            with db.session() as session:
                session.execute(
                    update(Notification)
                    .where(Notification.id == row.id)
                    .values(last_error=error, next_attempt_at=done + timedelta(seconds=backoff(attempts)))
                    .execution_options(synchronize_session=False)
                )
            continue
        with db.session() as session:
            session.execute(
                update(Notification)
                .where(Notification.id == row.id)
                .values(sent_at=datetime.now(UTC), last_error=None, next_attempt_at=None)
                .execution_options(synchronize_session=False)
            )
        sent += 1
    return sent


class Deliverer:
    """Runs :func:`deliver_pending` in a daemon thread: at once after :meth:`wake`, else every ``interval`` s."""

    def __init__(self, db: Database, config: DeliveryConfig, *, interval: float = 1.0) -> None:
        self.db, self.config, self.interval = db, config, interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        """Rows sent since start."""

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="headrace-alerts", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for due rows now (called by the Notifier after it wrote one)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` s (a send in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sent += deliver_pending(self.db, self.config)
            except Exception:  # noqa: BLE001 — DB down or similar: try again next time
                log.exception("delivering notifications failed")


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "MAX_ATTEMPTS",
    "Deliverer",
    "DeliveryConfig",
    "backoff",
    "deliver_pending",
    "pending",
    "send_email",
    "send_webhook",
    "webhook_payload",
]
