"""Start-up of a scheduler: the one path that ``python -m headrace.scheduler``, ``headrace scheduler``
and ``headrace standalone`` take.

A plain sequence: logging (:func:`setup_logging`), then, on a migrated
database, :func:`run_scheduler` serves the Prometheus metrics on
``metrics.scheduler_port`` (unless the caller serves them itself), makes the
executor ``core.executor`` names and the DAG processor (:func:`make_processor`:
``core.dags_folder`` plus the bundled example DAGs when ``core.load_examples``),
and runs :func:`headrace.scheduler.loop.run` until SIGTERM/SIGINT. The callers
differ only in where the settings and the database come from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel
from headrace.executors import make_executor
from headrace.observability.metrics import SchedulerMetrics, start_scheduler_metrics_server
from headrace.scheduler import loop

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
"""The bundled example DAGs (parsed when ``core.load_examples`` is on)."""

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(settings: Settings) -> None:
    """Log at ``logging.logging_level`` to stderr; Alembic's migration chatter only from warnings up."""
    logging.basicConfig(level=settings.get("logging", "logging_level"), format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def make_processor(settings: Settings, db: Database) -> DagProcessor:
    """The DAG processor for ``core.dags_folder`` (and the examples if ``core.load_examples``)."""
    extra = [EXAMPLE_DAGS] if settings.get("core", "load_examples") else []
    return DagProcessor(settings, db, extra_folders=extra)


def _own_processor(settings: Settings, db: Database) -> DagProcessor | None:
    """The scheduler's in-process DAG processor, or None with ``scheduler.standalone_dag_processor`` (a
    ``headrace dag-processor`` parses for it)."""
    if settings.get_bool("scheduler", "standalone_dag_processor"):
        logging.getLogger(__name__).info(
            "scheduler.standalone_dag_processor is on: this scheduler parses no DAG files (headrace dag-processor does)"
        )
        return None
    return make_processor(settings, db)


def run_scheduler(
    settings: Settings,
    db: Database,
    *,
    processor: DagProcessor | None = None,
    metrics: SchedulerMetrics | None = None,
    after_loop: Callable[[datetime], None] | None = None,
) -> None:
    """Run one scheduler on the migrated ``db`` in this process until it is told to stop.

    ``processor`` defaults to :func:`make_processor` — none with ``scheduler.standalone_dag_processor``
    (``standalone`` passes its own, so it always parses). ``metrics`` is given by a
    caller that serves its registry itself (``standalone``'s web server);
    without it, a :class:`SchedulerMetrics` is served on ``metrics.scheduler_port``.
    ``after_loop`` is passed on to :func:`headrace.scheduler.loop.run`.
    """
    if metrics is None:
        metrics = SchedulerMetrics()
        start_scheduler_metrics_server(
            metrics.registry,
            settings.get_int("metrics", "scheduler_port"),
            settings.get_str("metrics", "scheduler_host"),
        )
    loop.run(
        settings,
        db,
        make_executor(settings),
        processor=processor if processor is not None else _own_processor(settings, db),
        after_loop=after_loop,
        listeners=[metrics],
    )


def known_dag_ids(db: Database) -> set[str]:
    """The dag_ids the metadata DB has (before a parse: see :func:`unpause_new_examples`)."""
    with db.read_session() as session:
        return set(session.scalars(select(DagModel.dag_id)))


def unpause_new_examples(db: Database, known: set[str]) -> list[str]:
    """Unpause the bundled example DAGs that a parse just created (not in ``known``); return their ids.

    ``headrace standalone`` calls it, so its example pipeline runs although new DAGs start paused
    (``core.dags_are_paused_at_creation``); an example a user paused later stays paused.
    """
    with db.session() as session:
        new = [
            d
            for d in session.scalars(select(DagModel).where(DagModel.fileloc.startswith(str(EXAMPLE_DAGS))))
            if d.dag_id not in known and d.is_paused
        ]
        for dag in new:
            dag.is_paused = False
        return sorted(d.dag_id for d in new)


__all__ = [
    "known_dag_ids",
    "unpause_new_examples",
    "EXAMPLE_DAGS",
    "LOG_FORMAT",
    "make_processor",
    "run_scheduler",
    "setup_logging",
]
