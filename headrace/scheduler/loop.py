"""The scheduler loop: one screen that reads like the algorithm (see :func:`run`).

Start-up, in order: register a ``scheduler_job`` row; on SQLite wait for the lease
(:mod:`headrace.scheduler.lease`; on PostgreSQL every scheduler is active at once and claims its work row by
row); start the executor; adopt or end the tries a previous (dead) scheduler left
(:func:`~headrace.scheduler.housekeeping.adopt_or_fail_tries`). Then it listens for wake-ups
(:mod:`headrace.db.wakeup`). With ``scheduler.standalone_dag_processor`` the caller passes no processor and
``headrace dag-processor`` parses (:mod:`headrace.dagfiles.standalone`).

Each loop, every step returns a count: parse DAG files beside the loop (a
pass starts every ``scheduler.dag_dir_list_interval``; each file's result is
stored as its child ends; the loop never waits for one), create due runs, create asset-triggered runs
(after a try ended: :mod:`~headrace.scheduler.asset_runs`), start queued runs,
decide task instances, queue the ready ones, read executor events, finish
runs, start DAG callbacks, run due housekeeping; then wait.

A step skips what cannot have changed since it last looked, so a busy loop
costs little: runs are created when a DAG's ``next_run_after`` has come or
DAG files were parsed; queued runs start after a run was created or
finished; only the runs named by executor events (and newly started ones)
are examined, and only if they still have a task instance to decide; runs
are finished, and callbacks looked for, after a try ended. Changes made by
other processes (a CLI trigger, an unpause, a cleared task) are picked up by
a *full pass* — every step looks at everything — at least every
``scheduler.loop_interval``, after housekeeping changed something, and at
once when such a change woke the scheduler (:mod:`headrace.db.wakeup`).
Reads that find nothing to do run in a read transaction
(:meth:`~headrace.db.engine.Database.read_session`: no SQLite write lock).

The wait ends at the first of: an executor event (its ``fileno()`` is
readable — a finished try wakes the scheduler at once), a parse child's pipe
(a result, or its end), a wake-up from a trigger, clear, mark or unpause
(the next loop is a full pass), a stop request
(SIGTERM/SIGINT write to a self-pipe), or a timeout of
``scheduler.loop_interval`` — shorter when a retry or a sensor's next poke
(``up_for_reschedule``: one query for the earliest ``reschedule_date``, no
pass over the waiting sensors), a scheduled run, a chore
or the kill of an overdue parse child is due sooner. A loop that did work does not wait at all.

Stop (SIGTERM, SIGINT, ``stop.set()``, ``num_loops`` reached, lease lost):
``executor.terminate()`` (supervisors keep running and write their own
outcomes; the next scheduler adopts them), the lease is released and the job
row marked ended.

Lifecycle events go to the listeners (:mod:`headrace.observability.listener`):
``on_loop`` after each loop's steps, ``on_dag_file_parsed`` per parsed file,
``on_try_queued`` per try handed to the executor, ``on_try_finished`` for the
tries named by executor events (their ``task_try`` rows read in one query)
and for zombies, ``on_run_finished`` after the finishing transaction
committed, ``on_zombie`` and ``on_deadline_missed``. The ``alerts`` settings
add the notifier (and its delivery thread), ``metrics.statsd_host`` StatsD.

The clock is injected: :class:`SystemClock` in production,
``headrace.testing.FakeClock`` in tests.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Flag, auto
from types import FrameType
from typing import Any

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.outage import is_outage, retry_through_outage
from headrace.db.wakeup import WakeListener
from headrace.executors.base import Executor
from headrace.observability import deadlines
from headrace.observability.delivery import Deliverer, DeliveryConfig
from headrace.observability.listener import Listener, Listeners, RunInfo
from headrace.observability.notifications import AlertConfig, Notifier
from headrace.observability.statsd import statsd_listener_from_settings
from headrace.observability.tries import ended_tries
from headrace.scheduler import asset_runs, housekeeping, integrity, lease, readiness, runs
from headrace.scheduler.callbacks import DEADLINE_MISSED, CallbackRequest, CallbackRunner
from headrace.scheduler.clock import Clock, SystemClock
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.reconnect import OutageRider
from headrace.scheduler.start_trigger import TriggerStarter
from headrace.scheduler.zombies import ZombieReports
from headrace.states import DagRunState, TaskInstanceState
from headrace.supervisor.request import TryRequest

log = logging.getLogger(__name__)

_OPEN = frozenset({TaskInstanceState.QUEUED.value, TaskInstanceState.RUNNING.value})
"""Task instance states of a try whose supervisor has not recorded an outcome."""


class Step(Flag):
    """Steps one step can ask to look next loop although it is not a full pass (``Scheduler.asked``)."""

    CREATE_RUNS = auto()
    CREATE_ASSET_RUNS = auto()
    START_QUEUED_RUNS = auto()
    QUEUE_READY = auto()
    FINISH_RUNS = auto()
    RUN_CALLBACKS = auto()
    FOLLOW_VERSIONS = auto()


def run(
    settings: Settings,
    db: Database,
    executor: Executor,
    *,
    clock: Clock | None = None,
    processor: DagProcessor | None = None,
    num_loops: int | None = None,
    stop: threading.Event | None = None,
    after_loop: Callable[[datetime], None] | None = None,
    listeners: Iterable[Listener] = (),
    only_run: int | None = None,
) -> None:
    """Run the scheduler until stopped (or for ``num_loops`` loops). See the module docstring.

    ``only_run`` (a ``dag_run.id``; ``dags test``): create no runs and start, decide, queue, finish and
    call back that run alone (housekeeping still runs).

    ``after_loop(now)``, if given, is called after every loop's steps (the CLI
    uses it to report a DAG run's progress and to stop when it ends).

    ``executor`` is started here and terminated on the way out; ``processor``
    (None: no parsing, DAGs come from elsewhere) refreshes every
    ``scheduler.dag_dir_list_interval`` s; ``stop.set()`` ends the loop within
    one ``loop_interval``. Installs SIGTERM/SIGINT handlers when called from
    the main thread (restored on return). ``listeners`` get the lifecycle
    events (:mod:`headrace.observability.listener`); the notifier (``alerts``
    settings) and StatsD (``metrics.statsd_host``) listeners are added from the
    settings. Returns without running a loop if
    stopped while waiting for the lease. A lost database (a restart, a stop,
    a SQLite lock held past the busy timeout) does not stop it: it waits and
    reconnects (:meth:`Scheduler.ride_out_outage`) for up to
    ``database.outage_tolerance`` seconds. Other database errors propagate
    (the process manager restarts the scheduler; nothing is lost, see DESIGN.md).
    """
    s = Scheduler(
        settings, db, executor, clock or SystemClock(), processor, stop or threading.Event(), Listeners(listeners)
    )
    s.only_run = only_run
    with s.started():
        loops = 0
        while s.should_continue() and (num_loops is None or loops < num_loops):
            try:
                now = s.clock.now()
                began = time.perf_counter()
                s.begin_loop(now)
                work = (
                    s.refresh_dags(now)
                    + s.create_runs(now)
                    + s.create_asset_runs(now)
                    + s.start_queued_runs(now)
                    + s.examine_runs(now)
                    + s.queue_ready(now)
                    + s.sync_executor(now)
                    + s.finish_runs(now)
                    + s.run_callbacks(now)
                    + s.run_housekeeping(now)
                )
                loops += 1
                if s.listeners:
                    s.listeners.emit("on_loop", time.perf_counter() - began, now)
                if after_loop is not None:
                    after_loop(now)
                if work == 0 and (num_loops is None or loops < num_loops):
                    s.wait(now)
                s.outage.began = None  # a whole loop worked: the database is back for good
            except Exception as exc:
                if not is_outage(exc):
                    raise
                s.ride_out_outage(exc)


class Scheduler:
    """The state one scheduler process keeps between loops, and each step of the loop."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        executor: Executor,
        clock: Clock,
        processor: DagProcessor | None,
        stop: threading.Event,
        listeners: Listeners | None = None,
    ) -> None:
        self.settings, self.db, self.executor, self.clock = settings, db, executor, clock
        self.processor = processor
        self.stop = stop
        self.cache = DagCache()
        self.listeners = listeners if listeners is not None else Listeners()
        self.alerts = AlertConfig.from_settings(settings)
        self.deliverer: Deliverer | None = None
        self.queuer = readiness.Queuer(settings.parallelism, on_queued=self._try_queued, cache=self.cache)
        self.trigger_starter = TriggerStarter(settings)
        """Defers the new tries of tasks that start in the triggerer (``start_from_trigger``)."""
        # A DAG callback child imports the DAG file, then runs the callback.
        self.callbacks = CallbackRunner(
            settings.get_float("core", "dagbag_import_timeout") + settings.get_float("executor", "callback_timeout")
        )
        self.zombies = ZombieReports(db, self.cache, self.listeners, self.callbacks)
        self.loop_interval = settings.get_float("scheduler", "loop_interval")
        self.parse_interval = timedelta(seconds=settings.get_float("scheduler", "dag_dir_list_interval"))
        self.next_parse: datetime | None = None
        self.job_id = 0
        self.only_run: int | None = None
        """A ``dag_run.id`` the steps are narrowed to (``dags test``), or None: every run."""
        self.lease: lease.SchedulerLease | None = None
        self.shared = lease.several_schedulers(db)
        """Several schedulers may be active on this database (PostgreSQL): no lease, work claimed row by row."""
        self.health_threshold = settings.get_float("scheduler", "scheduler_health_check_threshold")
        """Seconds without a heartbeat after which a scheduler on another host counts as dead."""
        self.housekeeping = housekeeping.Housekeeping([])
        # What the steps may skip (see the module docstring): set by one step, consumed by another.
        self.full = True
        """This loop is a full pass: every step looks at everything."""
        self.next_full_pass: datetime | None = None
        self.next_run_due: datetime | None = None
        """Earliest ``next_run_after`` of a schedulable DAG, as last read (None: none, or blocked)."""
        self.retry_due: datetime | None = None
        """Earliest ``next_retry_at`` of a task instance up for retry, or ``reschedule_date`` of a sensor up for
        reschedule, as last read."""
        self.runs_to_examine: set[int] | None = set()
        """``dag_run.id`` of runs whose task instances changed (None: every run)."""
        self.ended_tasks: dict[int, set[str]] = {}
        """``dag_run.id`` → tasks whose tries ended there since the last examination (when ``runs_to_examine``
        names the run, only those tasks' dependents are decided: :func:`readiness.examine_run`)."""
        self.asked = Step(0)
        """Steps another step asked to look (e.g. a try ended: ``QUEUE_READY | FINISH_RUNS``)."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.wakeups: WakeListener | None = None
        """Wakes sent by triggers, clears and unpauses in other processes (:mod:`headrace.db.wakeup`);
        listened for once this scheduler holds the lease."""
        self.connected_since = clock.now()
        """When this scheduler last (re)connected to the database: heartbeats of tries on other hosts
        are judged only ``task_instance_heartbeat_timeout`` after it."""
        self.outage_tolerance = settings.get_float("database", "outage_tolerance")
        self.outage = OutageRider(self.outage_tolerance)
        """How long the database has been away (:meth:`ride_out_outage`)."""
        self._unsynced: list[Any] = []
        """Executor events read but not yet written (an outage interrupted ``sync_executor``)."""

    # --- start-up and shut-down ------------------------------------------------

    @contextmanager
    def started(self) -> Iterator[None]:
        """Register, take the lease, start the executor and adopt old tries; undo it all at the end."""
        restore = self._install_signal_handlers()
        try:
            with lease.leadership(
                self.db,
                self.clock,
                self.stop,
                self._wake_r,
                ttl=self.settings.get_float("scheduler", "lease_ttl"),
                outage_tolerance=self.outage_tolerance,
                exclusive=not self.shared,
            ) as self.lease:
                self.job_id = self.queuer.job_id = self.lease.job_id
                if not self.lease.held or self.stop.is_set():  # stopped before it could start: the loop will not run
                    yield
                    return
                self.wakeups = WakeListener.open(self.db)
                self.housekeeping = housekeeping.Housekeeping(
                    housekeeping.chores(
                        self.settings,
                        self.db,
                        cache=self.cache,
                        heartbeat=lambda t: lease.heartbeat(self.db, self.job_id, t),
                        renew_lease=None if self.shared else self._renew_lease,
                        adopt_orphans=self._adopt_orphans if self.shared else None,
                        check_deadlines=self.check_deadlines,
                        on_zombie=self.zombies.found,
                        connected_since=lambda: self.connected_since,
                        enforce_dagrun_timeouts=self.enforce_dagrun_timeouts,
                    )
                )
                self._start_alerts()
                self.executor.start()
                try:
                    retry_through_outage(
                        lambda: housekeeping.adopt_or_fail_tries(
                            self.db,
                            self.clock.now(),
                            cache=self.cache,
                            on_zombie=self.zombies.found,
                            home=self.settings.home,
                            in_executor=self.executor.has,  # a Celery executor adopted the tries it has messages for
                            job_id=self.job_id,
                            shared_threshold=self.health_threshold if self.shared else None,
                        ),
                        tolerance=self.outage_tolerance,
                        what="adopting running tries",
                        log=log,
                    )
                    self.zombies.flush()
                    yield
                finally:
                    if self.processor is not None:  # first: parse children hold the fork server's stdin open
                        self.processor.close()  # a hung import must not outlive the scheduler
                    self.executor.terminate()
                    self.callbacks.reap()
                    if self.deliverer is not None:
                        self.deliverer.stop()
        finally:
            restore()
            if self.wakeups is not None:
                self.wakeups.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            log.info("scheduler job %d stopped", self.job_id)

    def ride_out_outage(self, exc: BaseException) -> None:
        """The database went away mid-loop: wait, reconnect, make sure we still lead, and catch up.

        Logs the outage once and the recovery once. Retries with capped
        exponential backoff (0.1 s doubling to 5 s), waking at once for a stop
        request, until a write succeeds: taking the lease again, which also
        tells whether another scheduler took over meanwhile (then this one
        stops: ``should_continue`` is False). Past ``database.outage_tolerance``
        seconds the error is raised. Once back: end tries whose supervisor on
        this host died meanwhile (:func:`~.housekeeping.adopt_or_fail_tries`),
        requeue queued tries this executor never got (their queuing commit's
        answer was lost), and make the next loop a full pass. Executor events
        read before the outage are kept and written then.
        """
        self.zombies.drop()  # their transaction was rolled back: the check ends them again once we are back

        def reconnect() -> bool:
            assert self.lease is not None
            self.lease.acquire(self.clock.now())
            if not self.lease.held:
                return False
            self._catch_up()
            return True

        self.outage.ride_out(
            exc,
            wait=lambda seconds: self.clock.wait([self._wake_r], seconds),
            stopped=self.stop.is_set,
            drop_connections=self.db.engine.dispose,  # pooled connections the outage broke
            reconnect=reconnect,
        )

    def _catch_up(self) -> None:
        """After an outage: adopt or end tries, requeue lost queued tries, full pass next loop."""
        now = self.clock.now()
        housekeeping.adopt_or_fail_tries(
            self.db,
            now,
            cache=self.cache,
            on_zombie=self.zombies.found,
            home=self.settings.home,
            in_executor=self.executor.has,
            job_id=self.job_id,
            shared_threshold=self.health_threshold if self.shared else None,
        )
        self.zombies.flush()
        self.connected_since = now
        self.next_full_pass = None
        self.runs_to_examine = None
        self.next_parse = None

    def _start_alerts(self) -> None:
        """Add the StatsD and notifier listeners the settings ask for; start the alert delivery thread."""
        statsd = statsd_listener_from_settings(self.settings)
        if statsd is not None:
            self.listeners.add(statsd)
        if self.alerts.channels:
            self.deliverer = Deliverer(self.db, DeliveryConfig.from_settings(self.settings))
            self.deliverer.start()
            self.listeners.add(Notifier(self.db, self.alerts, wake=self.deliverer.wake))

    def _adopt_orphans(self, now: datetime) -> int:
        """Housekeeping chore (several schedulers): requeue the unclaimed queued tries of dead schedulers."""
        return housekeeping.adopt_orphans(
            self.db, now, job_id=self.job_id, threshold=self.health_threshold, in_executor=self.executor.has
        )

    def _renew_lease(self, now: datetime) -> int:
        assert self.lease is not None
        return self.lease.renew(now)

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            self.request_stop()

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        return lambda: [signal.signal(sig, handler) for sig, handler in old.items()]

    def request_stop(self) -> None:
        """Stop after the current step (safe from a signal handler or another thread)."""
        self.stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def should_continue(self) -> bool:
        """False once a stop was asked for or the lease was lost."""
        return not self.stop.is_set() and self.lease is not None and self.lease.held

    # --- the steps (each returns a count) -------------------------------------------

    def refresh_dags(self, now: datetime) -> int:
        """Start a parse pass when ``dag_dir_list_interval`` has passed and none is in progress; store what
        the children finished, never waiting for one. Return the files parsed, once their pass ended."""
        if self.processor is None:
            return 0
        if not self.processor.busy and (self.next_parse is None or now >= self.next_parse):
            self.next_parse = now + self.parse_interval
            self.processor.start(now)
        stats = self.processor.collect(now) if self.processor.busy else None
        if stats is None:
            return 0
        parsed = stats.files_parsed
        for fileloc, seconds, ok in stats.parsed if self.listeners else ():
            self.listeners.emit("on_dag_file_parsed", fileloc, seconds, ok)
        if parsed:
            self.asked |= Step.CREATE_RUNS | Step.FOLLOW_VERSIONS
        return parsed

    def begin_loop(self, now: datetime) -> None:
        """Decide whether this loop is a full pass (at most ``loop_interval`` after the last one)."""
        self.full = self.next_full_pass is None or now >= self.next_full_pass
        if self.full:
            self.next_full_pass = now + timedelta(seconds=self.loop_interval)
            self.runs_to_examine = None

    def _asked(self, step: Step) -> bool:
        """True on a full pass or if another step asked for ``step`` since it last looked (consumes the ask)."""
        if step in self.asked:
            self.asked &= ~step
            return True
        return self.full

    def create_runs(self, now: datetime) -> int:
        """Create due scheduled runs, if a DAG's ``next_run_after`` has come (or DAG files changed)."""
        if self.only_run is not None:
            return 0
        if not (self._asked(Step.CREATE_RUNS) or (self.next_run_due is not None and self.next_run_due <= now)):
            return 0
        with self.db.read_session() as session:
            self.next_run_due = queries.earliest_next_run_after(session)
        if self.next_run_due is None or self.next_run_due > now:
            return 0
        with self.db.session() as session:
            created = runs.create_runs(session, now, cache=self.cache)
        if created == 0:  # due but blocked (max_active_runs): look again on a full pass or when a run ends
            self.next_run_due = None
        if created:
            self.asked |= Step.START_QUEUED_RUNS
        return created

    def create_asset_runs(self, now: datetime) -> int:
        """Create asset-triggered runs whose condition is met, after a try ended (or on a full pass); none under
        ``dags test`` (``only_run``): its events stay queued for the scheduler."""
        if self.only_run is not None or not self._asked(Step.CREATE_ASSET_RUNS):
            return 0
        with self.db.read_session() as session:
            if not asset_runs.queued_dag_ids(session):
                return 0
        with self.db.session() as session:
            created = asset_runs.create_asset_runs(session, now, cache=self.cache)
        if created:
            self.asked |= Step.START_QUEUED_RUNS
        return created

    def start_queued_runs(self, now: datetime) -> int:
        """Start queued runs after a run was created or finished (and on a full pass)."""
        if not self._asked(Step.START_QUEUED_RUNS):
            return 0
        with self.db.read_session() as session:
            if not queries.queued_runs(session, limit=1, only_run=self.only_run):
                return 0
        with self.db.session() as session:
            started = runs.start_queued_runs(session, now, only_run=self.only_run)
        if started:
            self.runs_to_examine = None
            self.asked |= Step.FINISH_RUNS  # a run without tasks finishes at once
        return started

    def examine_runs(self, now: datetime) -> int:
        """Move unfinished runs to their DAG's new version (after a parse, and on a full pass), then decide the
        task instances of the runs that changed (of every run on a full pass, a due retry or a due
        poke)."""
        if (
            self._asked(Step.FOLLOW_VERSIONS)
            and self.only_run is None
            and integrity.follow_in_transaction(self.db, now, cache=self.cache)
        ):
            self.runs_to_examine, self.asked = None, self.asked | Step.FINISH_RUNS
        run_ids, self.runs_to_examine = self.runs_to_examine, set()
        ended, self.ended_tasks = self.ended_tasks, {}
        if self.retry_due is not None and self.retry_due <= now:
            run_ids = None
        if run_ids is None:
            ended = {}
        if self.only_run is not None:
            run_ids = {self.only_run} if run_ids is None or self.only_run in run_ids else set()
        if run_ids is not None and not run_ids:
            return 0
        with self.db.read_session() as session:
            self.retry_due = queries.earliest_retry_at(session)
            if not queries.runs_to_examine(session, run_ids):
                return 0
        with self.db.session() as session:
            changed = readiness.examine_runs(
                session,
                now,
                cache=self.cache,
                run_ids=run_ids,
                max_map_length=self.settings.get_int("core", "max_map_length"),
                starter=self.trigger_starter,
                ended=ended,
            )
        if changed:
            self.asked |= Step.QUEUE_READY | Step.FINISH_RUNS
        return changed

    def queue_ready(self, now: datetime) -> int:
        """Queue scheduled task instances, when some may have become ready or slots may have freed."""
        if not self._asked(Step.QUEUE_READY):
            return 0
        return self.queuer.queue_ready(self.db, self.executor, now, only_run=self.only_run)

    def sync_executor(self, now: datetime) -> int:
        """Read executor events; a try still open after its supervisor exited is ended as a zombie."""
        events = self._unsynced + self.executor.sync()
        if not events:
            return 0
        self._unsynced = events  # until written: an outage must not lose them
        with self.db.read_session() as session:
            tis = {ti.id: ti for ti in queries.ti_rows(session, [e.ti_id for e in events])}
        for event in events:
            ti = tis.get(event.ti_id)
            if ti is None:
                continue
            if self.runs_to_examine is not None:
                self.runs_to_examine.add(ti.dag_run_id)
                self.ended_tasks.setdefault(ti.dag_run_id, set()).add(ti.task_id)
            if ti.try_number == event.try_number and ti.state in _OPEN:
                housekeeping.end_exited_try(
                    self.db,
                    now,
                    event.ti_id,
                    event.try_number,
                    cache=self.cache,
                    exit_code=event.exit_code,
                    on_zombie=self.zombies.found_in_sync,
                    home=self.settings.home,
                )
        self.zombies.flush()
        if self.listeners:
            with self.db.read_session() as session:
                ended = ended_tries(session, [(e.ti_id, e.try_number) for e in events])
            for info in ended:
                self.listeners.emit("on_try_finished", info)
        self._unsynced = []
        self.asked |= Step.QUEUE_READY | Step.FINISH_RUNS | Step.CREATE_ASSET_RUNS
        return len(events)

    def finish_runs(self, now: datetime) -> int:
        """End runs whose task instances have all finished, looking only after a try ended (or on a full pass)."""
        if not self._asked(Step.FINISH_RUNS):
            return 0
        with self.db.read_session() as session:
            if not queries.finishable_runs(session, limit=1, only_run=self.only_run):
                return 0
        return self._end_runs(now, functools.partial(runs.finish_runs, only_run=self.only_run))

    def _end_runs(self, now: datetime, end: Callable[..., int]) -> int:
        """Run ``end(session, now, cache=, on_finished=)`` (:func:`~.runs.finish_runs` or
        :func:`~.runs.enforce_dagrun_timeouts`); after its commit emit ``on_run_finished`` for each run it
        ended, and ask the steps a freed ``max_active_runs`` slot and due callbacks concern."""
        ended: list[RunInfo] = []

        def note(run: Any, state: DagRunState) -> None:
            ended.append(
                RunInfo(
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    state=state.value,
                    start_date=getattr(run, "start_date", None),
                    end_date=now,
                )
            )

        with self.db.session() as session:
            count = end(session, now, cache=self.cache, on_finished=note if self.listeners else None)
        for info in ended:  # committed
            self.listeners.emit("on_run_finished", info)
        if count:  # a max_active_runs slot freed; callbacks are due
            self.asked |= Step.CREATE_RUNS | Step.START_QUEUED_RUNS | Step.RUN_CALLBACKS
        return count

    def run_callbacks(self, now: datetime) -> int:
        """Reap callback children; start the callbacks of runs that finished."""
        if not self._asked(Step.RUN_CALLBACKS):
            if self.callbacks.children:
                self.callbacks.reap()
            return 0
        return self.callbacks.run_pending(self.db, now, cache=self.cache, only_run=self.only_run)

    def enforce_dagrun_timeouts(self, now: datetime) -> int:
        """Housekeeping chore: fail runs older than their ``dagrun_timeout`` (:func:`~.runs.enforce_dagrun_timeouts`)."""
        return self._end_runs(now, runs.enforce_dagrun_timeouts)

    def check_deadlines(self, now: datetime) -> int:
        """Housekeeping chore: record deadline misses once, start their callbacks; return misses + callbacks."""
        found = deadlines.check_deadlines(
            self.db, now, get_dag=self.cache.get, alerts=self.alerts if self.alerts.channels else None
        )
        for miss in found.misses:
            self.listeners.emit("on_deadline_missed", miss)
        self.callbacks.start(
            [
                CallbackRequest(
                    cb.fileloc, cb.dag_id, cb.run, DEADLINE_MISSED, task_id=cb.task_id, deadline=cb.deadline
                )
                for cb in found.callbacks
            ]
        )
        if found.misses and self.deliverer is not None:
            self.deliverer.wake()
        return len(found.misses) + len(found.callbacks)

    # --- listener events ------------------------------------------------------------

    def _try_queued(self, request: TryRequest) -> None:
        if self.listeners:
            self.listeners.emit("on_try_queued", request.dag_id, request.task_id, request.run_id, request.try_number)

    def run_housekeeping(self, now: datetime) -> int:
        """Run the due chores; what they changed (zombies, requeued tries) is seen by a full pass next loop."""
        done = self.housekeeping.run_due(now)
        self.zombies.flush()
        if done:
            self.next_full_pass = now
        return done

    # --- waiting ------------------------------------------------------------------------

    def wait(self, now: datetime) -> None:
        """Wait for an executor event, a parse result, a stop request or the next due time (at most
        ``loop_interval``)."""
        fds = [self._wake_r]
        executor_fd = self.executor.fileno()
        if executor_fd is not None:
            fds.append(executor_fd)
        if self.processor is not None:
            fds += self.processor.fds()
        if self.wakeups is not None:
            fds += self.wakeups.fds()
        readable = self.clock.wait(fds, self._timeout(now))
        if self.wakeups is not None and self.wakeups.drain(readable):
            self.next_full_pass = None  # a trigger, clear or unpause elsewhere: the next loop looks at everything
        if self._wake_r in readable:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass

    def _timeout(self, now: datetime) -> float:
        """``loop_interval``, or less if a retry, a scheduled run, a parse, a chore or the kill of an overdue
        parse child is due sooner."""
        with self.db.read_session() as session:
            self.retry_due = queries.earliest_retry_at(session)
            self.next_run_due = queries.earliest_next_run_after(session)
        # While a pass is in progress the next one waits for it: its children's pipes wake the wait.
        parse_due = self.next_parse if self.processor is not None and not self.processor.busy else None
        dues = [self.retry_due, self.next_run_due, parse_due, self.housekeeping.next_due()]
        # Dues already past are blocked (max_active_runs, a paused DAG): they must not make the loop spin.
        soonest = min((d for d in dues if d is not None and d > now), default=None)
        timeout = self.loop_interval if soonest is None else min(self.loop_interval, (soonest - now).total_seconds())
        sync_in = self.executor.sync_due_in()  # an executor that polls for ends (Celery) wakes the wait too
        if sync_in is not None:
            timeout = min(timeout, sync_in)
        kill_at = self.processor.next_deadline() if self.processor is not None else None
        if kill_at is not None:  # time.monotonic(), not the clock: a child's time limit is real time
            timeout = min(timeout, kill_at - time.monotonic())
        return max(0.0, timeout)


__all__ = ["Clock", "Scheduler", "Step", "SystemClock", "run"]
