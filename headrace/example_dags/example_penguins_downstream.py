"""A cross-DAG dependency: wait for the penguins pipeline's report of the same day, then read it.

``wait_for_report`` is an ExternalTaskSensor on ``example_penguins_report.write_report`` at this run's logical
date (both DAGs run ``@daily``, so their runs share logical dates). In reschedule mode it has no process
between pokes; it fails at once if the report task failed (``failed_states``) instead of waiting for its
timeout. ``headline`` then prints the report's conclusion.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from headrace import dag, task
from headrace.sensors import ExternalTaskSensor


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sensors"],
    description="Wait for the penguins report of the same day (ExternalTaskSensor), then read it.",
)
def example_penguins_downstream() -> None:
    wait = ExternalTaskSensor(
        task_id="wait_for_report",
        external_dag_id="example_penguins_report",
        external_task_id="write_report",
        failed_states=["failed", "upstream_failed"],
        mode="reschedule",
        poke_interval=15,
        timeout=timedelta(hours=2),
    )

    @task
    def headline(ds: str) -> str:
        """The report's last line (the heaviest species)."""
        home = Path(os.environ.get("HEADRACE_HOME", Path.home() / "headrace"))
        line = (home / "reports" / f"penguins_{ds}.md").read_text().strip().splitlines()[-1]
        print(line)
        return line

    wait >> headline()


example_penguins_downstream()
