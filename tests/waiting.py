"""The tests' one poll-with-deadline helper."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition", *, interval: float = 0.01
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns something truthy, and return that.

    Fails (``AssertionError`` naming ``what``) after ``timeout`` s. For conditions with no event to
    wait on: a file, a row, a process, another process's output.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


__all__ = ["wait_until"]
