"""``python -m headrace.scheduler``: run one scheduler with the settings from the environment.

Start-up is a plain sequence: settings (``HEADRACE_HOME``, ``headrace.toml``,
``HEADRACE__SECTION__KEY``), logging, the database (checked to be migrated),
the executor ``core.executor`` names, the DAG processor (plus the bundled
example DAGs when ``core.load_examples``), the Prometheus metrics server on
``metrics.scheduler_port``, then :func:`headrace.scheduler.loop.run`
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
from pathlib import Path

from headrace.config import Settings, load_settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.migrate import check_migrated
from headrace.executors import make_executor
from headrace.observability.metrics import SchedulerMetrics, start_scheduler_metrics_server
from headrace.scheduler import loop

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
"""The bundled example DAGs (parsed when ``core.load_examples`` is on)."""


def make_processor(settings: Settings, db: Database) -> DagProcessor:
    """The DAG processor for ``core.dags_folder`` (and the examples if ``core.load_examples``)."""
    extra = [EXAMPLE_DAGS] if settings.get("core", "load_examples") else []
    return DagProcessor(settings, db, extra_folders=extra)


def main() -> None:
    """Run a scheduler in this process until it is told to stop."""
    settings = load_settings()
    logging.basicConfig(level=settings.get("logging", "logging_level"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = Database(settings.database_url, pool_size=int(settings.get("database", "pool_size")))
    check_migrated(db)
    metrics = SchedulerMetrics()
    start_scheduler_metrics_server(metrics.registry, int(settings.get("metrics", "scheduler_port")),
                                   str(settings.get("metrics", "scheduler_host")))
    loop.run(settings, db, make_executor(settings), processor=make_processor(settings, db), listeners=[metrics])


if __name__ == "__main__":
    main()
