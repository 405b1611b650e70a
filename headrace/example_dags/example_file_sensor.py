"""Wait for files to land, then process them: a FileSensor in reschedule mode.

``wait_for_csv`` pokes ``$HEADRACE_HOME/inbox/*.csv`` every 10 seconds. Between two pokes the task has no
process and holds no slot (``up_for_reschedule``): waiting costs nothing. Once a CSV is there, ``process``
counts its rows (per value of its first column), writes a summary next to the run's other files and moves
the CSV to ``inbox/processed/`` so the next run waits for new files. Nothing is written outside
``$HEADRACE_HOME``.

Try it::

    headrace dags trigger example_file_sensor
    mkdir -p ~/headrace/inbox && printf 'species,mass\\nAdelie,3700\\nGentoo,5000\\n' > ~/headrace/inbox/a.csv
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from headrace import dag, task
from headrace.sensors import FileSensor


def _home() -> Path:
    return Path(os.environ.get("HEADRACE_HOME", Path.home() / "headrace"))


INBOX = _home() / "inbox"
"""Where files are expected (``$HEADRACE_HOME/inbox``)."""


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    tags=["example", "sensors"],
    description="Wait for CSV files in $HEADRACE_HOME/inbox (reschedule-mode FileSensor), then summarize them.",
)
def example_file_sensor() -> None:
    wait = FileSensor(
        task_id="wait_for_csv",
        filepath=str(INBOX / "*.csv"),
        mode="reschedule",
        poke_interval=10,
        timeout=timedelta(hours=6),
    )

    @task
    def process(run_id: str) -> dict[str, dict[str, int]]:
        """Summarize each landed CSV and move it to ``inbox/processed/<run>/``; return the summaries."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
        done = INBOX / "processed" / safe
        done.mkdir(parents=True, exist_ok=True)
        summaries: dict[str, dict[str, int]] = {}
        for path in sorted(INBOX.glob("*.csv")):
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            header, body = (rows[0], rows[1:]) if rows else ([], [])
            counts = Counter(row[0] for row in body if row)
            summaries[path.name] = {"rows": len(body), **{f"{header[0]}={k}": n for k, n in sorted(counts.items())}}
            path.rename(done / path.name)
            print(f"{path.name}: {len(body)} rows; moved to {done}")
        (done / "summary.json").write_text(json.dumps(summaries, indent=2, sort_keys=True) + "\n")
        return summaries

    wait >> process()


example_file_sensor()
