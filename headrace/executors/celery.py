"""CeleryExecutor: tries run on ``headrace celery worker`` processes, on any host that reaches the broker.

``queue(request)`` publishes one message (:mod:`headrace.executors.celery_app`):
its Celery task id is the try's ``external_executor_id``, written in the
transaction that queued the try, and it is routed to the task's ``queue``.
Nothing else goes through the broker: no result backend, no events. A worker
runs each try under the same supervisor as the local executor, and the
supervisor writes the outcome to the metadata DB; so ``sync()`` learns that a
try ended from the DB — at most every 0.1 s (:data:`SYNC_INTERVAL`), one
query by primary key over the tries in flight — and reports every one that is
no longer ``queued`` or ``running`` with that ``try_number`` as ``exited``
(exit code None: the supervisor ran on another host).

A message that is lost (a broker that restarted without persistence, a queue
nobody consumes) leaves its try ``queued``: the scheduler's ``requeue_stuck``
chore gives it back after ``scheduler.task_queued_timeout`` and it is queued
again with a new message; if the old one turns up after all, the supervisor's
claim (``queued → running`` for exactly that ``try_number``) lets only one of
them run it. A message delivered twice (Redis' visibility timeout, a RabbitMQ
reconnect) is decided the same way.

When the scheduler starts, the executor adopts the tries a previous
scheduler queued through Celery (queued or running, with an
``external_executor_id``): their messages are still in the broker or on a
worker, so they are not queued again (``has()`` is true for them) and count
against ``core.parallelism`` until they end.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select

from headrace.config import Settings
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import SchedulerJob, TaskInstance
from headrace.exceptions import ExecutorError
from headrace.executors.base import ExecutorEvent
from headrace.executors.celery_app import make_app, send_try
from headrace.states import TaskInstanceState
from headrace.supervisor.request import TryRequest

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.1
"""Seconds between two reads of the in-flight tries' states (one query by primary key over at most
``core.parallelism`` rows): a try's end reaches the scheduler within this. At 1 s, a chain of tasks on Celery
paid ~1 s a hop and 8 slots gave ~7 tries/s (``benchmarks/celery_hosts.py``)."""

BROKER_BACKOFF = 2.0
"""Seconds the executor refuses tries (and offers no slot) after publishing one failed: a broker that is down
must not cost the scheduler ``celery.operation_timeout`` per try it has ready."""

_CHUNK = 500
"""Task instance ids per query (bound parameters per statement stay few)."""

_OPEN = (TaskInstanceState.QUEUED.value, TaskInstanceState.RUNNING.value)


class CeleryExecutor:
    """Publishes tries to Celery; learns their end from the metadata DB."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        """``db``: where to read the tries' states (default: a one-connection ``Database`` of the settings)."""
        self.settings = settings
        self.parallelism = settings.parallelism
        self._own_db = db is None
        self.db = db if db is not None else Database.from_settings(settings, role="executor", single_connection=True)
        self.app = make_app(settings)
        self._in_flight: set[tuple[int, int]] = set()
        self._next_sync = 0.0
        self._refuse_until = 0.0
        """While ``time.monotonic()`` is below it, the broker just failed: refuse at once, offer no slot."""

    def start(self) -> None:
        """Adopt the tries a previous scheduler queued through Celery and that are still queued or running.

        Not those of another scheduler that is still alive (several schedulers on PostgreSQL: its job row is
        not ended and has a heartbeat younger than ``scheduler.scheduler_health_check_threshold``): that
        scheduler follows them, and adopting them would spend this one's slots and report their ends twice.
        """
        threshold = self.settings.get_float("scheduler", "scheduler_health_check_threshold")
        fresh = datetime.now(UTC) - timedelta(seconds=threshold)
        live_owner = exists().where(
            SchedulerJob.id == TaskInstance.queued_by_job_id,
            SchedulerJob.ended_at.is_(None),
            SchedulerJob.heartbeat_at >= fresh,
        )
        with self.db.read_session() as session:
            rows = session.execute(
                select(TaskInstance.id, TaskInstance.try_number).where(
                    TaskInstance.state.in_(_OPEN), TaskInstance.external_executor_id.is_not(None), ~live_owner
                )
            ).all()
        self._in_flight.update((ti_id, try_number) for ti_id, try_number in rows)
        if rows:
            log.info("celery executor: adopted %d queued or running tries", len(rows))

    def open_slots(self) -> int:
        """``core.parallelism`` minus the tries in flight (queued to Celery and not seen to end); 0 for
        :data:`BROKER_BACKOFF` s after the broker failed, so the scheduler does not queue tries it would refuse."""
        if time.monotonic() < self._refuse_until:
            return 0
        return max(0, self.parallelism - len(self._in_flight))

    def queue(self, request: TryRequest) -> None:
        """Publish ``request``'s message. Raises ``ExecutorError`` when no slot is open or the broker refuses it
        (then at once, without trying, for the next :data:`BROKER_BACKOFF` s)."""
        broker = self.settings.get_str("celery", "broker_url")
        name = f"try {request.try_number} of {request.dag_id}.{request.task_id}"
        if time.monotonic() < self._refuse_until:
            raise ExecutorError(f"could not publish {name}: the broker {broker} failed just before", key=request.key)
        if self.open_slots() <= 0:
            raise ExecutorError(f"no open slot (parallelism {self.parallelism})", key=request.key)
        try:
            send_try(self.app, self.settings, request)
        except Exception as exc:  # noqa: BLE001 - kombu's and the transports' errors have no common base
            self._refuse_until = time.monotonic() + BROKER_BACKOFF
            raise ExecutorError(
                f"could not publish {name} to {broker}: {type(exc).__name__}: {exc}", key=request.key
            ) from exc
        self._in_flight.add(request.key)

    def has(self, ti_id: int, try_number: int) -> bool:
        """True while the try is in flight (published or adopted, not seen to end)."""
        return (ti_id, try_number) in self._in_flight

    def sync(self) -> list[ExecutorEvent]:
        """At most every :data:`SYNC_INTERVAL` s: an ``exited`` event for each in-flight try whose task instance
        left ``queued``/``running`` or moved to another ``try_number`` (or was deleted)."""
        now = time.monotonic()
        if not self._in_flight or now < self._next_sync:
            return []
        self._next_sync = now + SYNC_INTERVAL
        keys = sorted(self._in_flight)
        ids = sorted({ti_id for ti_id, _ in keys})
        current: dict[int, tuple[str, int]] = {}
        with self.db.read_session() as session:
            for start in range(0, len(ids), _CHUNK):
                for row in queries.ti_rows(session, ids[start : start + _CHUNK]):
                    current[row.id] = (row.state, row.try_number)
        events = []
        for ti_id, try_number in keys:
            state, number = current.get(ti_id, ("", -1))
            if number == try_number and state in _OPEN:
                continue
            self._in_flight.discard((ti_id, try_number))
            events.append(ExecutorEvent(ti_id, try_number, "exited", None))
        return events

    def fileno(self) -> None:
        """None: no descriptor signals a try's end (its supervisor writes it to the DB): see :meth:`sync_due_in`."""
        return None

    def sync_due_in(self) -> float | None:
        """While tries are in flight, the seconds until the next read of their states is due (the scheduler
        wakes then); None when none is in flight."""
        if not self._in_flight:
            return None
        return max(0.0, self._next_sync - time.monotonic())

    def terminate(self) -> None:
        """Close the broker connections. Queued messages stay in the broker and running tries on their workers."""
        self.app.close()
        if self._own_db:
            self.db.dispose()


__all__ = ["BROKER_BACKOFF", "SYNC_INTERVAL", "CeleryExecutor"]
