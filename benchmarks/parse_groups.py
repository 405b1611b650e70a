"""Parse benchmark: a 1,000-task DAG in 50 task groups, against the same 1,000 tasks without groups.

    python benchmarks/parse_groups.py [--tasks 1000] [--groups 50] [--repeat 7]

Writes two DAG files to a temporary folder: ``grouped`` (``--groups`` task
groups of ``--tasks / --groups`` tasks each, a chain inside every group, the
groups chained one after the other, an edge label between consecutive
groups) and ``flat`` (the same tasks and dependencies, no groups, no labels).
For each, ``--repeat`` times: import the file as the DAG processor does
(``load_dags``), serialize it (``serialize_dag``) and hash it. Prints the
median and the best of each step in milliseconds, and the serialized size in
bytes, so the cost of groups shows as the difference between the two rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from headrace.dagfiles.loader import load_dags
from headrace.dagfiles.serialization import dag_hash, serialize_dag

GROUPED = """
from datetime import datetime
from headrace import DAG, Label, TaskGroup, chain
from headrace.operators import EmptyOperator

with DAG("grouped_{n}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    groups = []
    for g in range({groups}):
        with TaskGroup(f"group_{{g}}", tooltip=f"group {{g}}") as tg:
            chain(*[EmptyOperator(task_id=f"task_{{t}}") for t in range({per_group})])
        groups.append(tg)
    for left, right in zip(groups, groups[1:]):
        left >> Label("next") >> right
"""

FLAT = """
from datetime import datetime
from headrace import DAG, chain
from headrace.operators import EmptyOperator

with DAG("flat_{n}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    chain(*[EmptyOperator(task_id=f"group_{{g}}.task_{{t}}") for g in range({groups}) for t in range({per_group})])
"""


def measure(folder: Path, template: str, name: str, repeat: int, groups: int, per_group: int) -> dict[str, float]:
    """Parse, serialize and hash the DAG ``repeat`` times (a new module name each time); milliseconds."""
    parse, serialize, size = [], [], 0
    for n in range(repeat):
        path = folder / f"{name}_{n}.py"
        path.write_text(template.format(n=n, groups=groups, per_group=per_group))
        t0 = time.perf_counter()
        (dag,) = load_dags(path)
        t1 = time.perf_counter()
        data = serialize_dag(dag)
        dag_hash(data)
        t2 = time.perf_counter()
        parse.append((t1 - t0) * 1000)
        serialize.append((t2 - t1) * 1000)
        size = len(json.dumps(data))
        assert len(dag.task_dict) == groups * per_group
    return {
        "parse_median_ms": statistics.median(parse),
        "parse_best_ms": min(parse),
        "serialize_median_ms": statistics.median(serialize),
        "serialize_best_ms": min(serialize),
        "serialized_bytes": size,
    }


def main() -> None:
    """Run both DAG shapes and print one row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.groups < 1 or args.tasks % args.groups:
        parser.error("--tasks must be a positive multiple of --groups")
    per_group = args.tasks // args.groups
    with tempfile.TemporaryDirectory(prefix="headrace-parse-groups-") as tmp:
        folder = Path(tmp)
        print(f"{args.tasks} tasks, {args.groups} groups of {per_group}, {args.repeat} repeats (ms)")
        print(
            f"{'DAG':<8} {'parse med':>10} {'parse best':>11} {'serialize med':>14} {'serialize best':>15} {'bytes':>9}"
        )
        for name, template in (("grouped", GROUPED), ("flat", FLAT)):
            r = measure(folder, template, name, args.repeat, args.groups, per_group)
            print(
                f"{name:<8} {r['parse_median_ms']:>10.1f} {r['parse_best_ms']:>11.1f} "
                f"{r['serialize_median_ms']:>14.1f} {r['serialize_best_ms']:>15.1f} {r['serialized_bytes']:>9}"
            )


if __name__ == "__main__":
    main()
