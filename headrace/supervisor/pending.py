"""A try's outcome as the supervisor records it, and keeping it on local disk until the metadata has it.

:class:`Outcome` is what :meth:`~.store.TryStore.record` writes; while the
database (or, later, the API server) is unreachable the supervisor keeps it in
``<home>/pending_outcomes`` (:func:`keep`), where the scheduler on this host
finds it if the supervisor dies meanwhile (:func:`kept`). Nothing here touches
the database.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("headrace.supervisor.recording")


@dataclass(frozen=True)
class Outcome:
    """A try's outcome as the supervisor records it: the task instance's new state and the try row's values.

    JSON-able (:meth:`to_json` / :meth:`from_json`), so it can wait on local
    disk while the database is unreachable (:func:`keep`).
    """

    ti_id: int
    try_number: int
    try_row_id: int
    state: str
    """The task instance's new state."""
    try_state: str
    """The state written on the ``task_try`` row (differs from ``state`` only for ``externally_set``)."""
    end_date: datetime
    end_reason: str
    next_retry_at: datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    peak_rss_bytes: int | None = None
    """Bytes."""
    cpu_seconds: float | None = None
    error: str | None = None
    processes_left: int | None = None
    """Processes of the try still running after its task process ended (see :mod:`.cgroups`)."""
    processes_killed: int | None = None
    """Of those, how many the supervisor killed."""
    rendered_fields: dict[str, str] | None = None
    """The task's rendered template fields (masked), if its process rendered them: written with the outcome."""
    rendered_map_index: str | None = None
    """The task's rendered ``map_index_template`` (its label), if its process sent one: written with the outcome."""
    reschedule_date: datetime | None = None
    """With state ``up_for_reschedule``: when the sensor's next poke is due (a ``task_reschedule`` row is
    written with the outcome)."""
    poke_start_date: datetime | None = None
    """With state ``up_for_reschedule``: when this poke's try was claimed (the ``task_reschedule`` row's start)."""
    trigger_classpath: str | None = None
    """With state ``deferred``: the trigger's class (a ``trigger`` row is written with the outcome)."""
    trigger_kwargs: str | None = None
    """With state ``deferred``: the trigger's kwargs, JSON text."""
    next_method: str | None = None
    """With state ``deferred``: the method the task resumes in."""
    next_kwargs: str | None = None
    """With state ``deferred``: JSON text of that method's extra keyword arguments (None: none)."""
    trigger_timeout: datetime | None = None
    """With state ``deferred``: when the deferral times out (None: never)."""
    asset_events: list[dict[str, Any]] | None = None
    """The asset events of a successful try (its outlets): written with the success (:mod:`headrace.db.assets`)."""
    asset_source: list[Any] | None = None
    """``[dag_id, task_id, run_id, map_index]`` of the try's task instance: the events' source."""

    def to_json(self) -> str:
        data = asdict(self)
        for key in _DATES:
            data[key] = data[key].isoformat() if data[key] is not None else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) for text that is not an outcome."""
        data = json.loads(text)
        for key in _DATES:
            if data.get(key) is not None:
                data[key] = datetime.fromisoformat(data[key])
        return cls(**data)

    def try_values(self, *, end_reason: str | None = None, error: str | None = None) -> dict[str, Any]:
        """Columns of ``task_try`` for :func:`~headrace.db.transitions.end_try`."""
        return {
            "state": self.try_state,
            "end_date": self.end_date,
            "end_reason": end_reason or self.end_reason,
            "error": error if error is not None else self.error,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "peak_rss_bytes": self.peak_rss_bytes,
            "cpu_seconds": self.cpu_seconds,
            "processes_left": self.processes_left,
            "processes_killed": self.processes_killed,
        }


_DATES = ("end_date", "next_retry_at", "reschedule_date", "poke_start_date", "trigger_timeout")
"""The datetime fields of :class:`Outcome` (ISO 8601 in its JSON)."""


def pending_dir(home: Path) -> Path:
    """Where outcomes wait for the database: ``<home>/pending_outcomes``."""
    return home / "pending_outcomes"


def pending_path(home: Path, ti_id: int, try_number: int) -> Path:
    """The file of one try's waiting outcome."""
    return pending_dir(home) / f"{ti_id}-{try_number}.json"


def keep(home: Path, outcome: Outcome) -> Path:
    """Write ``outcome`` to its pending file (atomically: a temporary file renamed); return the path."""
    path = pending_path(home, outcome.ti_id, outcome.try_number)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(outcome.to_json())
    os.replace(tmp, path)
    return path


def kept(home: Path, ti_id: int, try_number: int) -> Outcome | None:
    """The outcome a supervisor left on disk for this try, or None (no file, or not readable as one)."""
    path = pending_path(home, ti_id, try_number)
    try:
        return Outcome.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable pending outcome %s: %s", path, exc)
        return None


def forget(home: Path, ti_id: int, try_number: int) -> None:
    """Remove the try's pending file, once the database has its outcome."""
    try:
        pending_path(home, ti_id, try_number).unlink()
    except FileNotFoundError:
        pass
