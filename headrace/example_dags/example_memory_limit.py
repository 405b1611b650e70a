"""A memory-hungry task stopped by its ``memory_limit``.

``hog`` tries to hold 1 GiB but is limited to 256 MiB: the supervisor sees the
task's process tree go over the limit, kills it, and records the try as failed
with reason ``memory_limit_exceeded`` and its peak RSS. ``modest`` does the same
work on 64 MiB and succeeds. ``summary`` (trigger rule ``all_done``) runs either way.
"""

from __future__ import annotations

import time
from datetime import datetime

from headrace import dag, task

MIB = 1024 * 1024


def _hold(mib: int) -> int:
    blocks = []
    for _ in range(mib // 16):
        blocks.append(bytearray(16 * MIB))  # bytearray pages are written (zeroed): real RSS
        time.sleep(0.01)
    return sum(len(b) for b in blocks) // MIB


@dag(schedule=None, start_date=datetime(2026, 1, 1), tags=["example"], description="memory_limit at work.")
def example_memory_limit() -> None:
    @task(memory_limit="256MiB")
    def hog() -> int:
        return _hold(1024)

    @task(memory_limit="256MiB")
    def modest() -> int:
        return _hold(64)

    @task(trigger_rule="all_done")
    def summary() -> None:
        print("hog is expected to fail with memory_limit_exceeded; modest to succeed")

    [hog(), modest()] >> summary()


example_memory_limit()
