"""``python -m headrace.supervisor '<TryRequest JSON>'``: run one try in this process.

Settings come from the environment (``HEADRACE_HOME``, ``HEADRACE__SECTION__KEY``),
as passed by the executor (``Settings.to_env()``). The exit code is
``supervise``'s: 0 recorded, 2 claim lost, 1 supervisor error (64: bad usage).
"""

from __future__ import annotations

import logging
import sys

from headrace.config import load_settings
from headrace.dagfiles.loader import prepare_dag_imports
from headrace.db.engine import Database
from headrace.supervisor.request import TryRequest
from headrace.supervisor.sql_store import SqlTryStore
from headrace.supervisor.supervise import supervise


def main(argv: list[str]) -> int:
    """Parse ``argv`` (one TryRequest JSON argument), run the try, return the exit code."""
    if len(argv) != 1:
        print("usage: python -m headrace.supervisor '<TryRequest JSON>'", file=sys.stderr)
        return 64
    try:
        request = TryRequest.from_json(argv[0])
    except ValueError as exc:
        print(f"headrace.supervisor: {exc}", file=sys.stderr)
        return 64
    settings = load_settings()
    logging.basicConfig(
        level=settings.get("logging", "logging_level"),
        stream=sys.stderr,
        format="[%(asctime)s] {%(name)s} %(levelname)s - %(message)s",
    )
    prepare_dag_imports(settings)  # DAGs folder on sys.path, core.airflow_imports
    db = Database.from_settings(settings, role="supervisor", single_connection=True)
    try:
        return supervise(settings, SqlTryStore(settings, db), request)
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
