"""Run the real ``headrace`` command against the test's database.

``cli`` runs each command in a child forked by a warm process (:mod:`tests.cli.warm`): its own process
with the given environment, without paying an interpreter start and the CLI's imports each time.
``cli_subprocess`` runs ``python -m headrace`` itself; the tests that take it check the real entry point
of each command group (``tests/cli/test_startup.py`` checks what each command imports).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.config import Settings
from tests.cli.warm import WarmCli


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr


Cli = Callable[..., CliResult]


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(
        HEADRACE_HOME=str(settings.home),
        HEADRACE__DATABASE__URL=settings.database_url,
        HEADRACE__CORE__PARALLELISM="4",
        HEADRACE__EXECUTOR__FORKSERVER_IDLE_TIMEOUT="2",
        HEADRACE__METRICS__SCHEDULER_PORT="0",  # no shared fixed port between test workers
        HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",  # as the settings fixture (tests/conftest.py)
        COLUMNS="250",
    )
    return env


@pytest.fixture
def cli(cli_env: dict[str, str], warm_cli: WarmCli) -> Cli:
    """``cli(*args, timeout=120)``: run ``headrace *args`` with ``cli_env`` (read at each call) in a forked child."""

    def run(*args: str, timeout: float = 120) -> CliResult:
        return CliResult(warm_cli.run(list(args), dict(cli_env), timeout))

    return run


@pytest.fixture
def cli_subprocess(cli_env: dict[str, str]) -> Cli:
    """As ``cli``, through a new ``python -m headrace`` process each time (the real entry point)."""

    def run(*args: str, timeout: float = 120) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "headrace", *args],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc)

    return run


@pytest.fixture
def dags_folder(settings: Settings) -> Path:
    return settings.dags_folder
