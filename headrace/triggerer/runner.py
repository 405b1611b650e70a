"""The triggerer's loop: many triggers in one asyncio event loop, their events delivered through the database.

:class:`Triggerer.run` reads like its life:

1. **start** — insert this process's ``triggerer_job`` row; start the lag probe (a coroutine that sleeps
   :data:`LAG_PROBE_INTERVAL` seconds and records how late it wakes) and the watchdog thread (which, while
   the loop is stalled past ``triggerer.block_threshold``, looks at the loop thread's stack for the trigger
   running there).
2. **sync**, every :data:`SYNC_INTERVAL` seconds at most, at once when a trigger fired — in a worker thread,
   so the loop keeps running triggers meanwhile: deliver the events and failures gathered since the last
   sync (one transaction each, guarded by ownership: :mod:`headrace.db.triggers`), write the blocks seen,
   heartbeat (``triggerer.job_heartbeat_sec``), delete triggers nobody waits on, claim unowned triggers and
   those of triggerers silent for ``2 × job_heartbeat_sec`` up to ``triggerer.capacity``, and read the
   triggers it owns. Back in the loop: start the owned triggers not yet running, cancel those no longer owned.
3. **stop** (SIGTERM, SIGINT; or, with ``exit_when_idle``, no trigger left anywhere for that long) — cancel
   the triggers, mark the job ended and give its triggers back, so another triggerer claims them at once.

A trigger's first event, its exception, or its end without an event is recorded, and lines about it go to
the deferred try's log (``triggerer`` lines beside the supervisor's). A trigger that raises fails only its
own task instance; one that blocks the loop delays the others for as long as it blocks, and is named in the
triggerer's log, its try's log and ``headrace doctor``. If the process is SIGKILLed, its triggers are taken
over by another triggerer once its heartbeat is ``2 × job_heartbeat_sec`` old; an event it had not delivered
is produced again by the new owner (the wait is rebuilt from the stored trigger), and one it had delivered
is gone with its trigger row: none is lost, none delivered twice.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from headrace.authoring import xcom_serde
from headrace.authoring.triggers import TRIGGER_FAILURE, BaseTrigger, install_trigger_runtime
from headrace.config import Settings
from headrace.dagfiles.loader import prepare_dag_imports
from headrace.db import triggers as db_triggers
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.db.triggers import OwnedTrigger
from headrace.logs.files import append_line
from headrace.supervisor.external_requests import get_external_task_states
from headrace.supervisor.protocol import GetExternalTaskStates

log = logging.getLogger("headrace.triggerer")

SYNC_INTERVAL = 1.0
"""Longest time (s) between two syncs with the database: how soon a new deferral is picked up."""
EVENT_BATCH = 200
"""Events delivered per transaction (each one's trigger removal and task instance change stay together)."""
START_BATCH = 50
"""Triggers started before the loop gets a turn (rebuilding one costs ~0.1 ms of the loop's time)."""
LAG_PROBE_INTERVAL = 0.05
"""Seconds the lag probe sleeps; it wakes late by the event loop's lag."""


@dataclass
class _Running:
    """A trigger this triggerer runs."""

    owned: OwnedTrigger
    task: asyncio.Task[None]
    trigger: BaseTrigger | None = None


@dataclass
class _Pending:
    """What the loop gathered for the next sync to write."""

    events: list[tuple[OwnedTrigger, Any]] = field(default_factory=list)
    """(trigger, encoded payload)."""
    failures: list[tuple[OwnedTrigger, str, list[str]]] = field(default_factory=list)
    """(trigger, error, traceback lines)."""
    lines: list[tuple[str, str, str]] = field(default_factory=list)
    """(log path, message, level) for tries' logs."""
    blocks: list[tuple[float, int | None, str]] = field(default_factory=list)
    """(seconds, trigger id, detail)."""


def import_trigger(classpath: str, kwargs_json: str) -> BaseTrigger:
    """Rebuild a stored trigger: ``import(classpath)(**decoded kwargs)``.

    Raises ``ImportError``/``AttributeError`` for a class that cannot be found, ``TypeError`` for one that
    is not a ``BaseTrigger`` or refuses the kwargs.
    """
    module_name, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    kwargs = xcom_serde.decode(json.loads(kwargs_json))
    trigger = cls(**kwargs)
    if not isinstance(trigger, BaseTrigger):
        raise TypeError(f"{classpath} is not a BaseTrigger")
    return trigger


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Triggerer:
    """One triggerer process (see the module docstring).

    ``capacity``: most triggers at once (None: ``triggerer.capacity``). ``exit_when_idle``: seconds after
    which to stop once no ``trigger`` row exists (None: run until stopped; ``headrace standalone`` passes
    ``triggerer.idle_timeout``).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        capacity: int | None = None,
        exit_when_idle: float | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.capacity = capacity if capacity is not None else settings.get_int("triggerer", "capacity")
        if self.capacity < 1:
            raise ValueError(f"triggerer capacity must be at least 1, got {self.capacity}")
        self.heartbeat_interval = settings.get_float("triggerer", "job_heartbeat_sec")
        self.dead_after = 2 * self.heartbeat_interval
        self.block_threshold = settings.get_float("triggerer", "block_threshold")
        self.exit_when_idle = exit_when_idle
        self.job_id: int | None = None
        self.running: dict[int, _Running] = {}
        self.pending = _Pending()
        self.lags: list[float] = []
        self.stopping = False
        self._wake: asyncio.Event | None = None
        self._tick = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._suspect: tuple[float, int | None, str] | None = None
        """(tick the stall began at, trigger id, where it was), as the watchdog saw it."""
        self._by_object: dict[int, int] = {}
        """``id(trigger object)`` → trigger id, for the watchdog."""

    # --- life ---------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; return the exit code (0)."""
        prepare_dag_imports(self.settings)  # triggers defined in modules of the DAGs folder import
        asyncio.run(self._main())
        return 0

    def stop(self) -> None:
        """Ask the loop to stop (thread- and signal-safe when called from the loop's thread)."""
        self.stopping = True
        if self._wake is not None:
            self._wake.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._loop_thread = threading.get_ident()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        install_trigger_runtime(
            lambda dag_id, run_ids: asyncio.to_thread(self._run_states, dag_id, run_ids),
            lambda dag_id, dates, task_ids, group_id: asyncio.to_thread(
                self._external_states, dag_id, dates, task_ids, group_id
            ),
        )
        self.job_id = await asyncio.to_thread(self._register)
        log.info(
            "triggerer %d started: capacity %d, heartbeat %g s (takeover after %g s)",
            self.job_id,
            self.capacity,
            self.heartbeat_interval,
            self.dead_after,
        )
        probe = asyncio.create_task(self._probe_lag())
        watchdog = threading.Thread(target=self._watch_loop, name="triggerer-watchdog", daemon=True)
        watchdog.start()
        next_heartbeat = 0.0
        idle_since: float | None = None
        try:
            while not self.stopping:
                now = time.monotonic()
                beat = now >= next_heartbeat
                if beat:
                    next_heartbeat = now + self.heartbeat_interval
                pending, self.pending = self.pending, _Pending()
                lags, self.lags = (self.lags, []) if beat else ([], self.lags)
                ids, new, alive, total = await asyncio.to_thread(self._sync, pending, beat, lags, set(self.running))
                if not alive:
                    log.error("triggerer %d: its job row was ended by someone else; stopping", self.job_id)
                    break
                await self._reconcile(ids, new)
                if self.exit_when_idle is not None:
                    if total == 0 and not self.running:
                        idle_since = idle_since if idle_since is not None else now
                        if now - idle_since >= self.exit_when_idle:
                            log.info("triggerer %d: no trigger for %g s; exiting", self.job_id, self.exit_when_idle)
                            break
                    else:
                        idle_since = None
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=min(SYNC_INTERVAL, self.heartbeat_interval))
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            self.stopping = True
            probe.cancel()
            tasks = [r.task for r in self.running.values() if not r.task.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(probe, *tasks, return_exceptions=True)
            pending, self.pending = self.pending, _Pending()
            await asyncio.to_thread(self._finish, pending)
            log.info("triggerer %d stopped", self.job_id)

    # --- database side (a worker thread) ------------------------------------------------------------------

    def _run_states(self, dag_id: str, run_ids: Sequence[str]) -> dict[str, str]:
        """``{run_id: state}`` of the runs of ``dag_id`` among ``run_ids`` (for :class:`DagStateTrigger`)."""
        with self.db.read_session() as session:
            rows = session.execute(
                select(DagRun.run_id, DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(list(run_ids)))
            ).all()
        return {str(run_id): str(state) for run_id, state in rows}

    def _external_states(
        self, dag_id: str, dates: Sequence[datetime], task_ids: Sequence[str] | None, group_id: str | None
    ) -> dict[str, Any]:
        """The runs of ``dag_id`` at ``dates`` with the states of the task instances asked for (for
        :class:`WorkflowTrigger`): the ExternalTaskSensor's read, the one its supervisor answers a poke with."""
        message = GetExternalTaskStates(
            dag_id=dag_id,
            logical_dates=list(dates),
            task_ids=list(task_ids) if task_ids else None,
            task_group_id=group_id,
        )
        return get_external_task_states(self.db, message).model_dump()

    def _register(self) -> int:
        with self.db.session() as session:
            return db_triggers.register_triggerer(session, self.capacity, datetime.now(UTC))

    def _sync(
        self, pending: _Pending, beat: bool, lags: list[float], known: set[int]
    ) -> tuple[set[int], list[OwnedTrigger], bool, int]:
        """Write what was gathered, heartbeat, claim, read what it owns; return ``(owned ids, rows of the new
        ones, alive, trigger rows)``."""
        assert self.job_id is not None
        self._write(pending)
        now = datetime.now(UTC)
        with self.db.session() as session:
            alive = True
            if beat:
                alive = db_triggers.heartbeat(
                    session,
                    self.job_id,
                    now,
                    running=len(self.running),
                    lag_p99=_percentile(lags, 0.99),
                    lag_max=max(lags) if lags else None,
                )
            if beat:
                removed = db_triggers.delete_unused_triggers(session)
                if removed:
                    log.info("removed %d trigger(s) no task instance waits on any more", removed)
            if alive:
                db_triggers.claim_triggers(session, self.job_id, self.capacity, now, self.dead_after)
        with self.db.read_session() as session:
            ids, new = db_triggers.owned_triggers(session, self.job_id, known) if alive else (set(), [])
            total = db_triggers.trigger_count(session) if self.exit_when_idle is not None else -1
        return ids, new, alive, total

    def _write(self, pending: _Pending) -> None:
        assert self.job_id is not None
        now = datetime.now(UTC)
        # One transaction per batch of events; each event's trigger removal and task instance change are in it.
        for start in range(0, len(pending.events), EVENT_BATCH):
            batch = pending.events[start : start + EVENT_BATCH]
            with self.db.session() as session:
                delivered = db_triggers.deliver_events(session, self.job_id, batch, now)
            for owned, _ in batch:
                if owned.trigger_id in delivered:
                    log.info("trigger %d fired: %s resumes", owned.trigger_id, _ti_name(owned))
                else:
                    log.warning("trigger %d fired, but it was no longer ours or no longer awaited", owned.trigger_id)
                    self._line(pending, owned, "its event was not delivered (the trigger was taken over or dropped)")
        for start in range(0, len(pending.failures), EVENT_BATCH):
            with self.db.session() as session:
                for owned, error, lines in pending.failures[start : start + EVENT_BATCH]:
                    db_triggers.submit_failure(session, self.job_id, owned, error, lines, now)
        for seconds, trigger_id, detail in pending.blocks:
            with self.db.session() as session:
                db_triggers.record_block(session, self.job_id, now, seconds, trigger_id, detail)
        for path, message, level in pending.lines:
            try:
                append_line(Path(path), "triggerer", message, level)
            except OSError as exc:
                log.warning("cannot write to %s: %s", path, exc)

    def _finish(self, pending: _Pending) -> None:
        if self.job_id is None:
            return
        try:
            self._write(pending)
        finally:
            with self.db.session() as session:
                db_triggers.end_triggerer(session, self.job_id, datetime.now(UTC))

    # --- the loop side ------------------------------------------------------------------------------------

    async def _reconcile(self, ids: set[int], new: list[OwnedTrigger]) -> None:
        """Start owned triggers not running yet (``new``), yielding to the loop every :data:`START_BATCH`;
        cancel running ones no longer owned (not in ``ids``); forget finished ones."""
        for trigger_id, running in list(self.running.items()):
            if trigger_id not in ids:
                if not running.task.done():
                    running.task.cancel()
                    log.info("trigger %d is no longer ours or no longer awaited; cancelled", trigger_id)
                del self.running[trigger_id]
                if running.trigger is not None:
                    self._by_object.pop(id(running.trigger), None)
        started = 0
        for item in new:
            if item.trigger_id not in self.running:
                task = asyncio.create_task(self._run_trigger(item), name=f"trigger-{item.trigger_id}")
                self.running[item.trigger_id] = _Running(item, task)
                started += 1
                if started % START_BATCH == 0:
                    await asyncio.sleep(0)  # let these start (and the others run) before making more

    async def _run_trigger(self, owned: OwnedTrigger) -> None:
        """Rebuild and run one trigger to its first event; record the event or the failure."""
        running = self.running.get(owned.trigger_id)
        try:
            trigger = import_trigger(owned.classpath, owned.kwargs)
        except Exception as exc:  # noqa: BLE001 - a stored trigger that cannot be rebuilt fails its task
            self._fail(owned, f"{TRIGGER_FAILURE}: cannot rebuild {owned.classpath}: {exc}", exc)
            return
        trigger.trigger_id = owned.trigger_id
        if running is not None:
            running.trigger = trigger
        self._by_object[id(trigger)] = owned.trigger_id
        self._line(
            self.pending, owned, f"trigger {owned.trigger_id} ({owned.classpath}) running in triggerer {self.job_id}"
        )
        events = trigger.run()
        try:
            event = await events.__anext__()
        except StopAsyncIteration:
            self._fail(owned, f"{TRIGGER_FAILURE}: the trigger exited without sending an event", None)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - trigger code: its failure fails its task, never the loop
            self._fail(owned, f"{TRIGGER_FAILURE}: {type(exc).__name__}: {exc}", exc)
            return
        finally:
            await _close(events)
            try:
                await trigger.cleanup()
            except Exception:  # noqa: BLE001
                log.exception("trigger %d: cleanup failed", owned.trigger_id)
        try:
            payload = xcom_serde.encode(getattr(event, "payload", event))
        except Exception as exc:  # noqa: BLE001 - a payload that cannot be stored fails the task
            self._fail(owned, f"{TRIGGER_FAILURE}: the event's payload cannot be stored: {exc}", exc)
            return
        self._line(self.pending, owned, f"trigger {owned.trigger_id} fired: {event!r}")
        self.pending.events.append((owned, payload))
        assert self._wake is not None
        self._wake.set()

    def _fail(self, owned: OwnedTrigger, error: str, exc: BaseException | None) -> None:
        lines = traceback.format_exception(exc) if exc is not None else [error + "\n"]
        log.error("trigger %d (%s) failed: %s\n%s", owned.trigger_id, _ti_name(owned), error, "".join(lines).rstrip())
        self._line(
            self.pending, owned, f"trigger {owned.trigger_id} failed: {error}\n{''.join(lines).rstrip()}", "ERROR"
        )
        self.pending.failures.append((owned, error, lines))
        if self._wake is not None:
            self._wake.set()

    def _line(self, pending: _Pending, owned: OwnedTrigger, message: str, level: str = "INFO") -> None:
        if owned.log_path:
            pending.lines.append((owned.log_path, message, level))

    # --- lag and blocking ---------------------------------------------------------------------------------

    async def _probe_lag(self) -> None:
        """Sleep :data:`LAG_PROBE_INTERVAL` again and again; how late each wake comes is the loop's lag."""
        while True:
            start = time.monotonic()
            self._tick = start
            await asyncio.sleep(LAG_PROBE_INTERVAL)
            lag = max(0.0, time.monotonic() - start - LAG_PROBE_INTERVAL)
            self.lags.append(lag)
            if lag > self.block_threshold:
                self._report_block(start, lag)

    def _report_block(self, tick: float, lag: float) -> None:
        suspect = self._suspect if self._suspect is not None and self._suspect[0] == tick else None
        self._suspect = None
        trigger_id = suspect[1] if suspect is not None else None
        detail = suspect[2] if suspect is not None else "no trigger was seen running (not a trigger's own code?)"
        log.warning("the event loop was blocked for %.2f s: %s", lag, detail)
        self.pending.blocks.append((lag, trigger_id, detail))
        running = self.running.get(trigger_id) if trigger_id is not None else None
        if running is not None:
            self._line(
                self.pending,
                running.owned,
                f"this trigger blocked the triggerer's event loop for {lag:.2f} s ({detail}); "
                "a trigger must await, never block (use asyncio.sleep / asyncio.to_thread)",
                "WARNING",
            )

    def _watch_loop(self) -> None:
        """Watchdog thread: while the loop is stalled past the threshold, name the trigger on its stack."""
        step = max(0.01, self.block_threshold / 4)
        while not self.stopping:
            time.sleep(step)
            tick = self._tick
            stalled = time.monotonic() - tick - LAG_PROBE_INTERVAL
            if stalled > self.block_threshold and (self._suspect is None or self._suspect[0] != tick):
                self._suspect = (tick, *self._blocking_trigger())

    def _blocking_trigger(self) -> tuple[int | None, str]:
        frame = sys._current_frames().get(self._loop_thread)
        innermost = frame
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, BaseTrigger):
                trigger_id = self._by_object.get(id(owner), owner.trigger_id)
                where = f"{innermost.f_code.co_filename}:{innermost.f_lineno}" if innermost is not None else "?"
                running = self.running.get(trigger_id) if trigger_id is not None else None
                ti = f" for {_ti_name(running.owned)}" if running is not None else ""
                return (
                    trigger_id,
                    f"trigger {trigger_id} ({type(owner).__name__}{ti}) in {frame.f_code.co_name} at {where}",
                )
            frame = frame.f_back
        return None, "no trigger was on the event loop's stack (not a trigger's own code?)"


async def _close(events: Any) -> None:
    try:
        await events.aclose()
    except Exception:  # noqa: BLE001 - closing a broken generator: nothing more to do
        pass


def _ti_name(owned: OwnedTrigger) -> str:
    index = f"[{owned.map_index}]" if owned.map_index >= 0 else ""
    return f"{owned.dag_id}.{owned.task_id}{index} run {owned.run_id} try {owned.try_number}"
