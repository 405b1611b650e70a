"""Retries with exponential backoff: ``flaky`` fails its first two tries, then succeeds.

With ``retries=3``, ``retry_delay=2 s`` and ``retry_exponential_backoff``, the
second try starts about 2 s after the first fails and the third about 4 s after
the second. Each try has its own row, pid and log file (attempt=1.log, …).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from headrace import dag, task


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    tags=["example"],
    description="A task that succeeds on its third try.",
)
def example_retries() -> None:
    @task(retries=3, retry_delay=timedelta(seconds=2), retry_exponential_backoff=True)
    def flaky(try_number: int) -> int:
        print(f"this is try {try_number}")
        if try_number < 3:
            raise RuntimeError(f"simulated failure on try {try_number}")
        return try_number

    @task
    def report(tries_needed: int) -> None:
        print(f"flaky needed {tries_needed} tries")

    report(flaky())


example_retries()
