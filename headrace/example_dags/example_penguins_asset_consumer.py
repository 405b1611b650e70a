"""Penguins digest: scheduled on the asset ``penguins_report`` that ``example_penguins_report`` updates.

Each time a run of the penguins pipeline writes its report, this DAG gets an ``asset_triggered`` run; its
task reads the events that triggered it (``triggering_asset_events``: the report's path, set by the
producing task as the event's extra) and prints the report's first lines.
"""

from __future__ import annotations

from pathlib import Path

from headrace import Asset, dag, task
from headrace.authoring.asset_events import TriggeringAssetEvents

PENGUINS_REPORT = Asset(name="penguins_report", uri="headrace-example://penguins/report")
"""The asset ``example_penguins_report`` updates (the same name and URI)."""


@dag(schedule=[PENGUINS_REPORT], tags=["example", "assets"], description="Read the penguins report when it changes.")
def example_penguins_asset_consumer() -> None:
    @task
    def digest(triggering_asset_events: TriggeringAssetEvents) -> list[str]:
        """Print the head of each report whose update triggered this run; return their paths."""
        paths: list[str] = []
        for event in triggering_asset_events[PENGUINS_REPORT]:
            path = Path(str(event.extra["path"]))
            print(f"{event.source_dag_id} ({event.source_run_id}) wrote {path}:")
            print("\n".join(path.read_text().splitlines()[:3]))
            paths.append(str(path))
        return paths

    digest()


example_penguins_asset_consumer()
