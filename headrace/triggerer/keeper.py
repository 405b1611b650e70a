"""``headrace standalone``'s triggerer: a ``headrace triggerer`` child process that exists only while triggers do.

:class:`TriggererKeeper` is called after each scheduler loop. At most every :data:`CHECK_INTERVAL` seconds,
when no child is running, it counts the ``trigger`` rows (one indexed ``COUNT``) and starts
``headrace triggerer --exit-when-idle <triggerer.idle_timeout>`` when there is one. The child exits by itself
once no trigger has existed for ``triggerer.idle_timeout`` seconds; the keeper reaps it. So at rest there
is no triggerer process at all (the W3 idle workload stays at its process count).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.triggers import trigger_count

log = logging.getLogger("headrace.triggerer")

CHECK_INTERVAL = 1.0
"""Seconds between two looks for triggers while no triggerer child runs."""


class TriggererKeeper:
    """Starts the triggerer child when a trigger exists; reaps it when it has exited; stops it on :meth:`close`."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.child: subprocess.Popen[bytes] | None = None
        self._next_check = 0.0
        self.started = 0
        """How many triggerer children it started."""

    def __call__(self, now: datetime) -> None:
        """The scheduler's ``after_loop`` hook (``now`` unused: it paces itself on the monotonic clock)."""
        if self.child is not None:
            if self.child.poll() is None:
                return
            log.info("the triggerer (pid %d) exited with code %s", self.child.pid, self.child.returncode)
            self.child = None
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + CHECK_INTERVAL
        with self.db.read_session() as session:
            if trigger_count(session) == 0:
                return
        self.start()

    def start(self) -> None:
        """Start ``headrace triggerer --exit-when-idle <triggerer.idle_timeout>`` with this process's settings."""
        env = {**os.environ, **self.settings.to_env(), "HEADRACE_HOME": str(self.settings.home)}
        idle = self.settings.get_float("triggerer", "idle_timeout")
        self.child = subprocess.Popen(
            [sys.executable, "-m", "headrace", "triggerer", "--exit-when-idle", f"{idle:g}"],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        self.started += 1
        log.info("triggers are waiting: started a triggerer (pid %d)", self.child.pid)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the child, if any (SIGTERM: it gives its triggers back), and reap it."""
        if self.child is None or self.child.poll() is not None:
            self.child = None
            return
        self.child.send_signal(signal.SIGTERM)
        try:
            self.child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self.child = None
