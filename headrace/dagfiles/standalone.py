"""``headrace dag-processor``: parse the DAG files in a process of their own, for every scheduler.

With several schedulers on one database (PostgreSQL), each would otherwise parse every DAG file on its own
interval — N schedulers, N parses of the same files. One DAG processor does it for all of them instead, and
the schedulers run with ``scheduler.standalone_dag_processor = True`` (they then parse nothing). ``headrace
standalone`` and a lone ``headrace scheduler`` keep parsing in process.

The loop is the scheduler's parse step alone, with the same :class:`~headrace.dagfiles.processor.DagProcessor`:
a pass starts every ``scheduler.dag_dir_list_interval`` seconds (none while one is in progress); the loop
waits on the parse children's pipes, the kill deadline of an overdue child, the next pass, or a stop request
(SIGTERM/SIGINT); each file's result is stored as its child ends. After a pass that stored files, the
schedulers are woken (:func:`~headrace.db.wakeup.notify_scheduler`): their next loop is a full pass, which
creates the runs of new or changed DAGs and moves unfinished runs to new versions.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.wakeup import notify_scheduler

log = logging.getLogger(__name__)


def run_dag_processor(
    settings: Settings,
    db: Database,
    processor: DagProcessor,
    *,
    stop: threading.Event | None = None,
    num_passes: int | None = None,
) -> int:
    """Parse the DAG files every ``scheduler.dag_dir_list_interval`` s until stopped; return the passes run.

    ``stop.set()`` (or SIGTERM/SIGINT, handled when called from the main thread) ends it within a moment: the
    pass in progress is abandoned and its children killed (what they stored stays). ``num_passes``: return
    after that many complete passes (tests).
    """
    stop = stop or threading.Event()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()
        try:
            os.write(wake_w, b"x")
        except OSError:
            pass

    old = (
        {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        if threading.current_thread() is threading.main_thread()
        else {}
    )
    interval = timedelta(seconds=settings.get_float("scheduler", "dag_dir_list_interval"))
    passes = 0
    next_pass: datetime | None = None
    try:
        while not stop.is_set() and (num_passes is None or passes < num_passes):
            now = datetime.now(UTC)
            if not processor.busy and (next_pass is None or now >= next_pass):
                next_pass = now + interval
                processor.start(now)
            stats = processor.collect(now) if processor.busy else None
            if stats is not None:
                passes += 1
                if stats.files_parsed:
                    with db.session() as session:
                        notify_scheduler(session)
                continue
            timeout = interval.total_seconds()
            if next_pass is not None and not processor.busy:
                timeout = max(0.0, (next_pass - datetime.now(UTC)).total_seconds())
            kill_at = processor.next_deadline()
            if kill_at is not None:
                timeout = min(timeout, max(0.0, kill_at - time.monotonic()))
            readable, _, _ = select.select([wake_r, *processor.fds()], [], [], timeout)
            if wake_r in readable:
                os.read(wake_r, 4096)
    finally:
        processor.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
    log.info("DAG processor stopped after %d passes", passes)
    return passes


__all__ = ["run_dag_processor"]
