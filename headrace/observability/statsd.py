"""StatsD output (optional): the scheduler's figures sent over UDP with the ``statsd`` package.

On when ``metrics.statsd_host`` is set (:func:`statsd_listener_from_settings`).
Names mirror the Prometheus ones (``docs/metrics.md``) under
``metrics.statsd_prefix`` (default ``headrace``); StatsD has no labels, so
DAG/task ids go into the name, as Airflow does:

=====================================  =======  =====================================
name (after the prefix)                type     value
=====================================  =======  =====================================
``scheduler.loop_duration``            timer    ms of one loop's steps
``scheduler.heartbeat``                counter  +1 per loop
``dag_processing.parse_duration.<f>``  timer    ms to parse file ``<f>`` (its stem)
``dag_processing.import_errors``       counter  +1 per parse that failed
``ti.queued``                          counter  +1 per try queued
``ti.finished.<state>``                counter  +1 per try ended in ``<state>``
``ti.failures.<dag_id>.<task_id>``     counter  +1 per failed / up_for_retry try
``ti.duration``                        timer    ms of a try
``ti.scheduling_delay``                timer    ms queued → started
``ti.peak_rss_bytes``                  gauge    bytes, the latest try's peak RSS
``zombies``                            counter  +1 per zombie
``dagrun.finished.<state>``            counter  +1 per DAG run ended
``deadline_misses``                    counter  +1 per deadline miss
=====================================  =======  =====================================

UDP is fire-and-forget: a StatsD server that is down costs nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from statsd import StatsClient

from headrace.config import Settings
from headrace.observability.listener import DeadlineMissInfo, Listener, RunInfo, TryInfo

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _part(name: str) -> str:
    """One name segment: StatsD separators and odd characters become ``_``."""
    return _UNSAFE.sub("_", name.replace(".", "_"))


class StatsdListener(Listener):
    """Sends each event to a ``statsd.StatsClient``."""

    def __init__(self, client: StatsClient) -> None:
        self.client = client

    def on_loop(self, duration_seconds: float, now: datetime) -> None:
        self.client.timing("scheduler.loop_duration", duration_seconds * 1000.0)
        self.client.incr("scheduler.heartbeat")

    def on_dag_file_parsed(self, fileloc: str, seconds: float, ok: bool) -> None:
        self.client.timing(f"dag_processing.parse_duration.{_part(Path(fileloc).stem)}", seconds * 1000.0)
        if not ok:
            self.client.incr("dag_processing.import_errors")

    def on_try_queued(self, dag_id: str, task_id: str, run_id: str, try_number: int) -> None:
        self.client.incr("ti.queued")

    def on_try_finished(self, info: TryInfo) -> None:
        pipe = self.client.pipeline()
        pipe.incr(f"ti.finished.{_part(info.state)}")
        if info.state in ("failed", "up_for_retry"):
            pipe.incr(f"ti.failures.{_part(info.dag_id)}.{_part(info.task_id)}")
        if info.duration_seconds is not None:
            pipe.timing("ti.duration", info.duration_seconds * 1000.0)
        if info.scheduling_delay_seconds is not None:
            pipe.timing("ti.scheduling_delay", info.scheduling_delay_seconds * 1000.0)
        if info.peak_rss_bytes is not None:
            pipe.gauge("ti.peak_rss_bytes", info.peak_rss_bytes)
        pipe.send()

    def on_run_finished(self, run: RunInfo) -> None:
        self.client.incr(f"dagrun.finished.{_part(run.state)}")

    def on_zombie(self, info: TryInfo, reason: str) -> None:
        self.client.incr("zombies")

    def on_deadline_missed(self, miss: DeadlineMissInfo) -> None:
        self.client.incr("deadline_misses")


def statsd_listener_from_settings(settings: Settings) -> StatsdListener | None:
    """A :class:`StatsdListener` for ``metrics.statsd_host:statsd_port`` with ``statsd_prefix``; None if no host."""
    host = settings.get_str("metrics", "statsd_host")
    if not host:
        return None
    prefix = settings.get_str("metrics", "statsd_prefix") or None
    return StatsdListener(StatsClient(host, settings.get_int("metrics", "statsd_port"), prefix=prefix))


__all__ = ["StatsdListener", "statsd_listener_from_settings"]
