"""The supervisor's one door to the metadata: :class:`TryStore`.

Everything a supervisor reads or writes about its try goes through one object:

* :meth:`~TryStore.claim` — ``queued → running`` for exactly this try, the
  ``task_try`` row (host, the supervisor's and the task process's pid and
  start time, log path) and the XComs of an earlier try cleared, in one
  transaction; what the task needs to run comes back (:class:`ClaimedTry`);
* :meth:`~TryStore.heartbeat` — the try is alive; says when the task instance
  no longer runs it (a user, or a zombie check, moved it on);
* :meth:`~TryStore.answer` — the task process's requests: XCom reads and
  writes, variables, connections (decrypted on the store's side), mapped
  items, skips, other DAGs' runs, asset events;
* :meth:`~TryStore.record` — the outcome (:class:`~.pending.Outcome`): the
  try row and the task instance's new state, in one transaction.

Failure semantics: a method raises when the metadata cannot be reached;
:meth:`~TryStore.is_unavailable` says whether an error means that (worth
retrying) rather than a bug, and :meth:`~TryStore.retry` calls again with
backoff for up to a tolerance. Every call is safe to repeat: each is a
compare-and-set or an idempotent write.

Today's implementation is :class:`~.sql_store.SqlTryStore` (the metadata
database, through SQLAlchemy). An HTTP transport — workers with no database
credentials, as Airflow 3's execution API — implements the same five calls
against the API server and changes no supervisor logic: the modules that
decide (:mod:`.supervise`, :mod:`.claim`, :mod:`.watch`, :mod:`.shipping`)
never import ``headrace.db`` (an import-linter contract). See docs/executors.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from headrace.authoring.context import RunInfo
from headrace.dagfiles.serialization import SerializedTask
from headrace.supervisor.pending import Outcome
from headrace.supervisor.request import TryRequest

if TYPE_CHECKING:
    from headrace.storage.stores import Stores

T = TypeVar("T")


@dataclass(frozen=True)
class TryTarget:
    """The task instance a supervisor serves requests for."""

    ti_id: int
    dag_run_pk: int
    """``dag_run.id`` of the TI's run."""
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    """The task instance's map index (-1: not mapped)."""


@dataclass(frozen=True)
class TryStart:
    """What a claim records about the try's processes (all known before the claim: the task process is
    forked ahead and waits at its gate)."""

    request: TryRequest
    host: str
    supervisor_pid: int
    supervisor_start_time: float
    """The supervisor's process start time (seconds since the epoch, pid-reuse proof)."""
    pid: int | None
    """The task process (None: none could be forked; the try then fails, recorded as not started)."""
    process_start_time: float | None
    containment: str | None
    """``cgroup`` or ``marker``: how the try's processes are found (:mod:`.cgroups`)."""
    log_path: str
    now: datetime
    """The try's start (UTC)."""


@dataclass(frozen=True)
class ClaimedTry:
    """What the claim loaded for a won try: where it runs and what its task process needs."""

    target: TryTarget
    try_row_id: int
    """``task_try.id`` of this try (inserted, or reopened for a sensor's next poke or a resumed deferral)."""
    max_tries: int
    run: RunInfo
    policy: SerializedTask | None
    """The task's serialized entry (retries, limits, callbacks flags); None if the DAG version lacks it."""
    expanded_ti_count: int | None
    """For a mapped task instance: how many indices its task has in the run (None: not mapped)."""
    next_method: str | None
    """Set when a deferred task resumes: the method it resumes in."""
    next_kwargs: Any
    resumed: bool
    """A sensor's next poke or a resumed deferral: the try's log may hold earlier lines."""
    cleared_references: tuple[str, ...] = ()
    """Object-store references of the XComs the claim cleared (deleted from the store after the claim)."""


class TryStore(Protocol):
    """The supervisor's metadata calls (see the module docstring). Every method may raise an error for which
    :meth:`is_unavailable` is true (retry it) or any other (a bug or refusal: report it)."""

    def claim(self, start: TryStart) -> ClaimedTry | None:
        """Claim ``start.request``'s try and record ``start``; None if the try was not queued for us (lost)."""
        ...

    def heartbeat(self, target: TryTarget, try_row_id: int, try_number: int) -> tuple[str, int] | None:
        """Mark the try alive; None if the task instance still runs it, else the task instance's
        ``(state, try_number)`` now (``("deleted", try_number)`` when it is gone)."""
        ...

    def answer(self, target: TryTarget, message: Any) -> Any:
        """Serve one request of the task process (a :mod:`.protocol` message) and return its answer; a
        failure becomes an ``Error`` answer (the task fails with it), after retrying through unavailability."""
        ...

    def record(self, outcome: Outcome) -> bool:
        """Write the try's outcome in one transaction; True if the task instance took it."""
        ...

    def is_unavailable(self, exc: BaseException) -> bool:
        """True if ``exc`` means the metadata could not be reached (retrying may succeed)."""
        ...

    def retry(self, fn: Callable[[], T], *, what: str, tolerance: float | None = None) -> T:
        """``fn()``, called again with backoff while it fails with unavailability, for up to ``tolerance``
        seconds (None: ``database.outage_tolerance``); the last error propagates past it."""
        ...

    def stores(self) -> Stores:
        """The deployment's object stores (remote logs, large XComs)."""
        ...


def one_line(exc: BaseException) -> str:
    """The first line of a driver's or transport's message for ``exc`` (for a log line)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


__all__ = ["ClaimedTry", "TryStart", "TryStore", "TryTarget", "one_line"]
