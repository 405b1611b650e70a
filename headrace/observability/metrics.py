"""Prometheus metrics: the scheduler's own registry (a listener) and a collector that reads the DB.

Three sources, all named ``headrace_…`` with the unit in the name
(``_seconds``, ``_bytes``, ``_total``), listed with their meaning in
``docs/metrics.md``:

* :class:`SchedulerMetrics` — a :class:`~headrace.observability.listener.Listener`
  with its own ``CollectorRegistry``: loop duration and heartbeat, DAG file
  parse time per file, scheduling delay, try duration, try peak RSS, failures
  by DAG and task, zombies, tries queued. It lives in the scheduler process:
  ``headrace scheduler`` serves it on ``metrics.scheduler_port``
  (:func:`start_scheduler_metrics_server`); ``headrace standalone`` passes it
  to the API app, whose ``/metrics`` then shows it too.
* :class:`DbCollector` — read at scrape time from the metadata DB with a few
  grouped queries (one read transaction): task instances and DAG runs by
  state, tries waiting for a slot, executor open/used slots (``core.parallelism``
  against queued + running), scheduler heartbeat age, import errors,
  deadline misses. Any process that can reach the DB (the API server) serves it.
* :class:`ApiMetrics` — the API server's own counters (failed logins), on the
  app's ``/metrics``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from headrace.db.asset_models import AssetDagRunQueue, AssetEvent
from headrace.db.engine import Database
from headrace.db.models import DagRun, DeadlineMiss, ImportError_, SchedulerJob, TaskInstance
from headrace.observability.listener import DeadlineMissInfo, Listener, RunInfo, TryInfo
from headrace.states import DagRunState, TaskInstanceState

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600)
"""Seconds: try duration (a no-op try takes ~10 ms, an ETL job hours)."""
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Seconds: queued → started."""
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Seconds: one scheduler loop's steps."""
RSS_BUCKETS = tuple(float(2**n) for n in range(20, 37))
"""Bytes: 1 MiB … 64 GiB, doubling."""

_FAILED = frozenset({TaskInstanceState.FAILED.value, TaskInstanceState.UP_FOR_RETRY.value})


class SchedulerMetrics(Listener):
    """Scheduler-side Prometheus metrics, on :attr:`registry` (not the global default registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.heartbeat = Gauge(
            "headrace_scheduler_heartbeat_timestamp_seconds", "Unix time of the scheduler's latest loop.", registry=r
        )
        self.loop_duration = Histogram(
            "headrace_scheduler_loop_duration_seconds",
            "Wall time of one scheduler loop's steps (without the wait).",
            buckets=LOOP_BUCKETS,
            registry=r,
        )
        self.parse_seconds = Gauge(
            "headrace_dag_file_parse_duration_seconds",
            "Seconds the latest parse of a DAG file took.",
            ["fileloc"],
            registry=r,
        )
        self.parse_errors = Counter(
            "headrace_dag_file_import_errors_total",
            "Parses of a DAG file that ended in an import error.",
            ["fileloc"],
            registry=r,
        )
        self.scheduling_delay = Histogram(
            "headrace_scheduling_delay_seconds",
            "Seconds from a try being queued to its task process starting.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.try_duration = Histogram(
            "headrace_try_duration_seconds", "Wall time of a try, start to end.", buckets=DURATION_BUCKETS, registry=r
        )
        self.try_peak_rss = Histogram(
            "headrace_try_peak_rss_bytes",
            "Peak resident memory of a try's process tree.",
            buckets=RSS_BUCKETS,
            registry=r,
        )
        self.tries_finished = Counter(
            "headrace_tries_finished_total", "Tries that ended, by the state they left.", ["state"], registry=r
        )
        self.task_failures = Counter(
            "headrace_task_failures_total",
            "Tries that ended failed or up_for_retry, by DAG and task.",
            ["dag_id", "task_id"],
            registry=r,
        )
        self.zombies = Counter("headrace_zombies_total", "Tries ended as zombies (supervisor gone).", registry=r)
        self.tries_queued = Counter(
            "headrace_tries_queued_total", "Tries queued and handed to the executor.", registry=r
        )
        self.runs_finished = Counter(
            "headrace_dag_runs_finished_total", "DAG runs that ended, by state.", ["state"], registry=r
        )
        self.deadline_misses = Counter(
            "headrace_deadline_misses_total", "DAG runs and task instances found past their deadline.", registry=r
        )

    def on_loop(self, duration_seconds: float, now: datetime) -> None:
        self.heartbeat.set(now.timestamp())
        self.loop_duration.observe(duration_seconds)

    def on_dag_file_parsed(self, fileloc: str, seconds: float, ok: bool) -> None:
        self.parse_seconds.labels(fileloc).set(seconds)
        if not ok:
            self.parse_errors.labels(fileloc).inc()

    def on_try_queued(self, dag_id: str, task_id: str, run_id: str, try_number: int) -> None:
        self.tries_queued.inc()

    def on_try_finished(self, info: TryInfo) -> None:
        self.tries_finished.labels(info.state).inc()
        if info.state in _FAILED:
            self.task_failures.labels(info.dag_id, info.task_id).inc()
        duration = info.duration_seconds
        if duration is not None:
            self.try_duration.observe(duration)
        delay = info.scheduling_delay_seconds
        if delay is not None:
            self.scheduling_delay.observe(delay)
        if info.peak_rss_bytes is not None:
            self.try_peak_rss.observe(info.peak_rss_bytes)

    def on_run_finished(self, run: RunInfo) -> None:
        self.runs_finished.labels(run.state).inc()

    def on_zombie(self, info: TryInfo, reason: str) -> None:
        self.zombies.inc()

    def on_deadline_missed(self, miss: DeadlineMissInfo) -> None:
        self.deadline_misses.inc()


class ApiMetrics:
    """The API server's own Prometheus metrics, on :attr:`registry` (one per app; ``/metrics`` shows it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.login_failures = Counter(
            "headrace_login_failures_total",
            "Failed logins, by how they came (via: session, basic, token) and why (reason: wrong_credentials, "
            "throttled).",
            ["via", "reason"],
            registry=self.registry,
        )


class DbCollector(Collector):
    """Gauges read from the metadata DB at scrape time (a few grouped queries in one read transaction).

    ``parallelism`` is ``core.parallelism`` (executor slots). Errors reading
    the DB are logged and the scrape returns ``headrace_metadb_up 0`` instead
    of failing.
    """

    def __init__(self, db: Database, parallelism: int) -> None:
        self.db = db
        self.parallelism = parallelism

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("headrace_metadb_up", "1 if the metadata DB answered this scrape's queries.")
        try:
            families = self._read()
        except Exception:  # noqa: BLE001 — a scrape must not fail because the DB is down
            log.exception("metrics: reading the metadata DB failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[GaugeMetricFamily | CounterMetricFamily]:
        now = datetime.now(UTC)
        with self.db.read_session() as session:
            ti_counts = dict(
                session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)).all()
            )
            run_counts = dict(session.execute(select(DagRun.state, func.count()).group_by(DagRun.state)).all())
            heartbeat = session.scalar(
                select(func.max(SchedulerJob.heartbeat_at)).where(SchedulerJob.ended_at.is_(None))
            )
            import_errors = session.scalar(select(func.count()).select_from(ImportError_)) or 0
            misses = session.scalar(select(func.count()).select_from(DeadlineMiss)) or 0
            asset_events = session.scalar(select(func.count()).select_from(AssetEvent)) or 0
            asset_runs_queued = (
                session.scalar(
                    select(func.count())
                    .select_from(DagRun)
                    .where(DagRun.run_type == "asset_triggered", DagRun.state == DagRunState.QUEUED.value)
                )
                or 0
            )
            dags_waiting = session.scalar(select(func.count(func.distinct(AssetDagRunQueue.target_dag_id)))) or 0
        tis = GaugeMetricFamily("headrace_task_instances", "Task instances by state.", labels=["state"])
        for state in TaskInstanceState:
            tis.add_metric([state.value], ti_counts.get(state.value, 0))
        runs = GaugeMetricFamily("headrace_dag_runs", "DAG runs by state.", labels=["state"])
        for rstate in DagRunState:
            runs.add_metric([rstate.value], run_counts.get(rstate.value, 0))
        waiting = GaugeMetricFamily(
            "headrace_tries_waiting", "Task instances waiting for an executor slot (scheduled + queued)."
        )
        waiting.add_metric(
            [], ti_counts.get(TaskInstanceState.SCHEDULED.value, 0) + ti_counts.get(TaskInstanceState.QUEUED.value, 0)
        )
        used = ti_counts.get(TaskInstanceState.QUEUED.value, 0) + ti_counts.get(TaskInstanceState.RUNNING.value, 0)
        used_g = GaugeMetricFamily("headrace_executor_used_slots", "Tries queued or running (core.parallelism slots).")
        used_g.add_metric([], used)
        open_g = GaugeMetricFamily("headrace_executor_open_slots", "core.parallelism minus tries queued or running.")
        open_g.add_metric([], max(0, self.parallelism - used))
        age = GaugeMetricFamily(
            "headrace_scheduler_heartbeat_age_seconds",
            "Seconds since the newest heartbeat of a running scheduler (NaN: none running).",
        )
        age.add_metric([], (now - heartbeat).total_seconds() if heartbeat is not None else math.nan)
        errors = GaugeMetricFamily("headrace_import_errors", "DAG files that currently fail to import.")
        errors.add_metric([], import_errors)
        miss_g = GaugeMetricFamily("headrace_deadline_misses", "Deadline misses recorded (all time).")
        miss_g.add_metric([], misses)
        events_c = CounterMetricFamily("headrace_asset_events", "Asset events recorded (all time).")
        events_c.add_metric([], asset_events)
        asset_runs_g = GaugeMetricFamily(
            "headrace_asset_triggered_runs_queued", "Asset-triggered DAG runs queued (created, not started yet)."
        )
        asset_runs_g.add_metric([], asset_runs_queued)
        adrq_g = GaugeMetricFamily(
            "headrace_asset_dags_waiting", "DAGs with asset events queued whose asset condition is not met yet."
        )
        adrq_g.add_metric([], dags_waiting)
        return [tis, runs, waiting, used_g, open_g, age, errors, miss_g, events_c, asset_runs_g, adrq_g]


def db_registry(db: Database, parallelism: int) -> CollectorRegistry:
    """A registry holding only a :class:`DbCollector` for ``db``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DbCollector(db, parallelism))
    return registry


def start_scheduler_metrics_server(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``registry`` at ``http://host:port/metrics`` in a daemon thread (no authentication).

    Returns the WSGI server (``.shutdown()`` stops it), or None when ``port``
    is 0 (off) or the address cannot be bound — that is logged as a warning,
    the scheduler runs on without it.
    """
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning(
            "scheduler metrics not served: cannot listen on %s:%d (%s); set metrics.scheduler_port (0: off)",
            host,
            port,
            exc.strerror or exc,
        )
        return None
    log.info("scheduler metrics on http://%s:%d/metrics", host, server.server_port)
    return server


__all__ = ["ApiMetrics", "DbCollector", "SchedulerMetrics", "db_registry", "start_scheduler_metrics_server"]
