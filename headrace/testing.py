"""Helpers for testing headrace and DAGs: run a DAG to its end, and a fake clock the scheduler loop accepts.

:func:`run_dag_inline` is for DAG authors' own unit tests (what Airflow's
``dag.test()`` gives them): it runs one DAG run to its end through the real
scheduler loop and supervisors, on a throw-away SQLite home unless settings
are given, and returns the run's and each task's final state.

``FakeClock`` satisfies :class:`headrace.scheduler.clock.Clock`: ``now()``
returns a settable time and ``wait()`` never sleeps — it polls the given file
descriptors once and, if none is readable, advances the fake time by the
timeout, as if that long had passed.
"""

from __future__ import annotations

import select
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.authoring.dag import DAG
    from headrace.config import Settings
    from headrace.dagfiles.processor import DagProcessor
    from headrace.db.engine import Database
    from headrace.observability.listener import Listener


class FakeClock:
    """A clock for tests: starts at ``start`` (UTC-aware) and moves only when told (or by ``wait``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2024, 1, 1, tzinfo=UTC)
        if self.current.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self.waits: list[float] = []
        """Every timeout ``wait`` was called with, in seconds."""

    def now(self) -> datetime:
        """The fake current time."""
        return self.current

    def advance(self, seconds: float) -> datetime:
        """Move the fake time forward by ``seconds``; return the new time."""
        self.current += timedelta(seconds=seconds)
        return self.current

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (UTC-aware)."""
        self.current = when

    def wait(self, fds: Sequence[int], timeout: float) -> list[int]:
        """Return the readable ``fds`` at once; if none, advance by ``timeout`` and return []."""
        self.waits.append(timeout)
        readable, _, _ = select.select(list(fds), [], [], 0)
        if not readable:
            self.advance(timeout)
        return list(readable)


@dataclass(frozen=True)
class InlineRun:
    """How :func:`run_dag_inline`'s run ended."""

    run_id: str
    state: str
    """``success`` or ``failed``."""
    task_states: dict[str, str]
    """``{task_id: final state}``."""
    log_paths: dict[str, list[str]]
    """``{task_id: [log file of try 1, try 2, …]}``."""
    home: Path
    """The headrace home the run used (its SQLite DB and logs stay there for inspection)."""


FAST_LOOP: dict[str, dict[str, Any]] = {
    "scheduler": {"loop_interval": 0.2, "heartbeat_interval": 0.5, "dag_dir_list_interval": 3600},
    "core": {"executor": "local"},
}
"""Settings for an inline run: a quick loop, no folder parsing (the DAG is given)."""


def run_scheduler_until(
    settings: Settings,
    db: Database,
    done: Callable[[], bool],
    *,
    processor: DagProcessor | None = None,
    listeners: Iterable[Listener] = (),
    each_loop: Callable[[datetime], None] | None = None,
    timeout: float = 300.0,
) -> bool:
    """Run a real scheduler loop (local executor unless the settings say otherwise) in this thread until
    ``done()`` is true after a loop; return False if ``timeout`` seconds passed first.

    ``each_loop(now)`` is called after every loop's steps, before ``done()``;
    ``processor`` parses DAG files as the scheduler does (None: no parsing);
    ``listeners`` get the scheduler's lifecycle events. The one loop driver of
    :func:`run_dag_inline` and of headrace's own tests.
    """
    from headrace.executors import make_executor
    from headrace.scheduler import loop

    stop = threading.Event()
    give_up = time.monotonic() + timeout
    finished: list[bool] = []

    def after_loop(now: datetime) -> None:
        if each_loop is not None:
            each_loop(now)
        if done():
            finished.append(True)
            stop.set()
        elif time.monotonic() > give_up:
            stop.set()

    loop.run(
        settings,
        db,
        make_executor(settings),
        processor=processor,
        stop=stop,
        after_loop=after_loop,
        listeners=listeners,
    )
    return bool(finished)


def run_dag_inline(
    dag: DAG,
    *,
    logical_date: datetime | None = None,
    conf: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    timeout: float = 300.0,
) -> InlineRun:
    """Run one DAG run of ``dag`` to its end in this process's scheduler loop; return how it ended.

    The DAG is stored as the DAG processor would store it after parsing
    ``dag.fileloc`` (the file that defines it, which each task's process
    imports), a manual run is created with ``logical_date`` (default now)
    and ``conf`` (the DAG is unpaused, whatever ``is_paused_upon_creation``
    says), and a scheduler loop with the local executor runs it (every
    try in its own supervised process, as in production). ``settings``
    default to a new temporary home with an SQLite database. Raises
    ``TimeoutError`` if the run has not ended after ``timeout`` seconds, and
    whatever the DAG raises at serialization (``DagDefinitionError``,
    ``ScheduleError``).
    """
    from sqlalchemy import select as sql_select

    from headrace.config import load_settings
    from headrace.dagfiles.processor import DagProcessor, ParseResult
    from headrace.dagfiles.serialization import serialize_dag
    from headrace.db.engine import Database
    from headrace.db.migrate import migrate
    from headrace.db.models import DagRun, TaskInstance, TaskTry
    from headrace.scheduler.runs import trigger_dag
    from headrace.scheduler.user_actions import set_paused

    if settings is None:
        home = Path(tempfile.mkdtemp(prefix=f"headrace-{dag.dag_id}-"))
        settings = load_settings({"HEADRACE_HOME": str(home)}).with_overrides(FAST_LOOP)
    db = Database(settings.database_url)
    try:
        migrate(db)
        now = datetime.now(UTC)
        with db.session() as session:
            DagProcessor(settings, db).store_result(
                session, ParseResult(dag.fileloc, dags=[serialize_dag(dag)]), 0.0, 0, now
            )
            set_paused(session, dag.dag_id, False)  # new DAGs start paused (core.dags_are_paused_at_creation)
            run = trigger_dag(session, dag.dag_id, conf=conf, logical_date=logical_date, now=now)
            run_pk, run_id = run.id, run.run_id
        ended: list[str] = []

        def run_ended() -> bool:
            with db.read_session() as session:
                state = session.scalar(sql_select(DagRun.state).where(DagRun.id == run_pk))
            if state in ("success", "failed"):
                ended.append(str(state))
                return True
            return False

        if not run_scheduler_until(settings, db, run_ended, timeout=timeout):
            raise TimeoutError(f"the run {run_id} of {dag.dag_id} did not end within {timeout:g} s")
        with db.read_session() as session:
            states = {
                t: s
                for t, s in session.execute(
                    sql_select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == run_pk)
                )
            }
            logs: dict[str, list[str]] = {}
            for task_id, path in session.execute(
                sql_select(TaskTry.task_id, TaskTry.log_path)
                .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
                .where(TaskInstance.dag_run_id == run_pk)
                .order_by(TaskTry.try_number)
            ):
                logs.setdefault(task_id, []).append(path)
        return InlineRun(run_id=run_id, state=ended[0], task_states=states, log_paths=logs, home=settings.home)
    finally:
        db.dispose()


__all__ = ["FakeClock", "InlineRun", "run_dag_inline", "run_scheduler_until"]
