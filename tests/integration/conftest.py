"""Fixtures of the through-the-scheduler tests: real ``headrace triggerer`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from headrace.config import Settings

from .helpers import DEFER_FAST


@pytest.fixture
def start_triggerer(settings: Settings) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start ``headrace triggerer`` processes with the test's settings (and :data:`DEFER_FAST`); stop
    (SIGTERM) those still alive at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, **settings.with_overrides(DEFER_FAST).to_env(), "HEADRACE_HOME": str(settings.home)}

    def start() -> subprocess.Popen[bytes]:
        log = open(settings.home / f"triggerer-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "headrace", "triggerer"], env=env, stdout=log, stderr=log)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
