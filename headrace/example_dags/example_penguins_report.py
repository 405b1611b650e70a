"""Penguins report: read, clean, aggregate per group, write a report.

Real work on real data shipped inside a PyPI package (the Palmer Penguins
CSV of ``palmerpenguins``: 344 penguins observed 2007-2009 at Palmer Station,
Antarctica; Gorman, Williams & Fraser, 2014). No network is needed.

extract → clean → (summarize_by_species, summarize_by_island) → write_report

``write_report`` updates the asset ``penguins_report`` (its outlet): each successful try records an asset
event with the report's path, and ``example_penguins_asset_consumer`` is scheduled on it.

Intermediate data goes to files under the run's work folder; only paths and
small summaries travel as XCom, as they should.
"""

from __future__ import annotations

import csv
import os
import statistics
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from headrace import Asset, dag, task
from headrace.authoring.asset_events import OutletEventAccessors

PENGUINS_REPORT = Asset(name="penguins_report", uri="headrace-example://penguins/report")
"""The report this DAG writes, as an asset (``example_penguins_asset_consumer`` runs when it is updated)."""

NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


def _work_dir(run_id: str) -> Path:
    home = Path(os.environ.get("HEADRACE_HOME", Path.home() / "headrace"))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    path = home / "work" / "example_penguins_report" / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def _summarize(path: str, group_by: str) -> dict[str, dict[str, float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row[group_by], []).append(row)
    summary: dict[str, dict[str, float]] = {}
    for name, members in sorted(groups.items()):
        stats: dict[str, float] = {"count": len(members)}
        for column in NUMERIC:
            values = [float(m[column]) for m in members]
            stats[f"mean_{column}"] = round(statistics.fmean(values), 2)
        stats["max_body_mass_g"] = max(float(m["body_mass_g"]) for m in members)
        summary[name] = stats
    return summary


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "data"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    description="Clean the Palmer Penguins data and write a per-species, per-island report.",
)
def example_penguins_report() -> None:
    @task
    def extract(run_id: str) -> str:
        """Copy the raw CSV shipped with palmerpenguins into the run's work folder."""
        source = resources.files("palmerpenguins") / "data" / "penguins.csv"
        target = _work_dir(run_id) / "raw.csv"
        target.write_text(source.read_text())
        rows = sum(1 for _ in target.open()) - 1
        print(f"extracted {rows} rows to {target}")
        return str(target)

    @task
    def clean(raw_path: str, run_id: str) -> str:
        """Drop rows with a missing measurement or sex; normalise types."""
        target = _work_dir(run_id) / "clean.csv"
        kept = dropped = 0
        with open(raw_path, newline="") as src, target.open("w", newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
            writer.writeheader()
            for row in reader:
                if any(row[c] in ("", "NA") for c in (*NUMERIC, "sex")):
                    dropped += 1
                    continue
                for column in NUMERIC:
                    row[column] = str(float(row[column]))
                writer.writerow(row)
                kept += 1
        print(f"kept {kept} rows, dropped {dropped} incomplete rows")
        return str(target)

    @task
    def summarize_by_species(clean_path: str) -> dict[str, dict[str, float]]:
        return _summarize(clean_path, "species")

    @task
    def summarize_by_island(clean_path: str) -> dict[str, dict[str, float]]:
        return _summarize(clean_path, "island")

    @task(outlets=[PENGUINS_REPORT])
    def write_report(
        by_species: dict[str, dict[str, float]],
        by_island: dict[str, dict[str, float]],
        ds: str,
        outlet_events: OutletEventAccessors,
    ) -> str:
        """Write a Markdown report to HEADRACE_HOME/reports/penguins_<ds>.md."""
        home = Path(os.environ.get("HEADRACE_HOME", Path.home() / "headrace"))
        out = home / "reports" / f"penguins_{ds}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# Palmer penguins — report for {ds}", ""]
        for title, summary in (("species", by_species), ("island", by_island)):
            lines += [
                f"## By {title}",
                "",
                f"| {title} | count | mean body mass (g) | max body mass (g) "
                "| mean flipper (mm) | mean bill length (mm) |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for name, s in summary.items():
                lines.append(
                    f"| {name} | {int(s['count'])} | {s['mean_body_mass_g']:.1f} | {s['max_body_mass_g']:.0f} "
                    f"| {s['mean_flipper_length_mm']:.1f} | {s['mean_bill_length_mm']:.1f} |"
                )
            lines.append("")
        heaviest = max(by_species.items(), key=lambda kv: kv[1]["mean_body_mass_g"])
        lines.append(f"Heaviest species on average: **{heaviest[0]}** ({heaviest[1]['mean_body_mass_g']:.0f} g).")
        out.write_text("\n".join(lines) + "\n")
        outlet_events[PENGUINS_REPORT].extra = {"path": str(out), "heaviest_species": heaviest[0]}
        print(f"report written to {out}")
        return str(out)

    cleaned = clean(extract())
    write_report(summarize_by_species(cleaned), summarize_by_island(cleaned))


example_penguins_report()
