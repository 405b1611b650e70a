"""``TryRequest``: what an executor hands a supervisor — one try to run.

It lives here, below the executors, because the supervisor consumes it and
the supervisor must not import the executors; ``headrace.executors.base``
re-exports it as the executor interface's type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TryRequest:
    """One try of a task instance to run."""

    ti_id: int
    """Primary key of the ``task_instance`` row."""
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    """The try to run: the TI's ``try_number`` when it was queued (1-based)."""
    fileloc: str
    """Path of the DAG file defining the DAG (the task process imports it)."""
    queue: str = "default"
    """The task's queue (Celery routes on it)."""
    priority_weight: int = 1
    """Higher runs first when an executor has more requests than slots."""
    map_index: int = -1
    """The task instance's map index (-1: not mapped); its tries' logs go under ``map_index=N``."""
    external_executor_id: str | None = None
    """The id written with the try when it was queued (``task_instance.external_executor_id``): the Celery
    executor's task id. None from callers that queue no message (``tasks test``)."""

    @property
    def key(self) -> tuple[int, int]:
        """``(ti_id, try_number)``: names the try within one metadata DB."""
        return (self.ti_id, self.try_number)

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> TryRequest:
        """Parse :meth:`to_json` output. Raises ``ValueError`` for malformed input."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a TryRequest must be a JSON object, got {type(data).__name__}")
        try:
            request = cls(**data)
        except TypeError as exc:
            raise ValueError(f"not a TryRequest: {exc}") from None
        if not isinstance(request.ti_id, int) or not isinstance(request.try_number, int) or request.try_number < 1:
            raise ValueError(f"not a TryRequest: bad ti_id/try_number in {data!r}")
        return request
