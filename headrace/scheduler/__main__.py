"""``python -m headrace.scheduler``: run one scheduler with the settings from the environment.

Settings (``HEADRACE_HOME``, ``headrace.toml``, ``HEADRACE__SECTION__KEY``),
logging, the database (checked to be migrated), then the start-up that
``headrace scheduler`` takes too (:func:`headrace.scheduler.start.run_scheduler`)
until SIGTERM/SIGINT.
"""

from __future__ import annotations

from headrace.config import load_settings
from headrace.db.engine import Database
from headrace.db.migrate import check_migrated
from headrace.scheduler.start import run_scheduler, setup_logging


def main() -> None:
    """Run a scheduler in this process until it is told to stop."""
    settings = load_settings()
    setup_logging(settings)
    db = Database.from_settings(settings, role="scheduler")
    check_migrated(db)
    run_scheduler(settings, db)


if __name__ == "__main__":
    main()
