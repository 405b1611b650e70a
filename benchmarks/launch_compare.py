"""Compare the try path of headrace trees: ``launch.py`` run alternately on each, medians printed.

    python benchmarks/launch_compare.py BASE_DIR [OTHER_DIR ...] [--runs N] [--tries N] [--db sqlite|postgresql]
        [--task-seconds S]

``BASE_DIR`` is another headrace source tree, e.g. a commit extracted with
``git archive 1d67dc7 | tar -x -C /tmp/base``; it is put first on ``PYTHONPATH``
(the fork server and supervisors inherit it) and its own ``benchmarks/launch.py``
is run. The last side is this tree; further trees (``OTHER_DIR``, e.g. the main
branch before a change) go between. Runs alternate (base, other, this, base, …)
so that the machine's drifting speed hits all alike; the table gives each
figure's median over the runs and the change of this tree against the base in
per cent.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

FIGURES = {
    "latency median ms": re.compile(r"latency: median ([\d.]+) ms"),
    "latency p90 ms": re.compile(r"p90 ([\d.]+) ms"),
    "throughput tries/s": re.compile(r"throughput: ([\d.]+) tries/s"),
    "fork server CPU ms/try": re.compile(r"fork server ([\d.]+) ms"),
    "supervisor CPU ms/try": re.compile(r"supervisor ([\d.]+) ms"),
    "task process CPU ms/try": re.compile(r"task process ([\d.]+) ms"),
    "total CPU ms/try": re.compile(r"total ([\d.]+) ms"),
    "page faults/try": re.compile(r"page faults per try \(supervisor \+ task process\): (\d+)"),
}
OPTIONAL = {"page faults/try"}
"""Figures an older launch.py does not print."""


def _run(tree: Path, tries: int, db: str, task_seconds: float = 0.0) -> dict[str, float]:
    """Run ``tree``'s launch.py once; return its figures by name (raises ``RuntimeError`` if it failed)."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [environ.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "launch.py"), "--tries", str(tries), "--db", db]
        + (["--task-seconds", str(task_seconds)] if task_seconds else []),
        cwd=tree,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"launch.py in {tree} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    figures = {}
    for name, pattern in FIGURES.items():
        match = pattern.search(done.stdout)
        if match is None:
            if name in OPTIONAL:
                continue
            raise RuntimeError(f"launch.py in {tree} printed no {name!r}:\n{done.stdout}")
        figures[name] = float(match.group(1))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path, help="the other headrace source tree (e.g. from git archive)")
    parser.add_argument("others", type=Path, nargs="*", help="more trees to run alternately (e.g. main)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each tree (alternating)")
    parser.add_argument("--tries", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--task-seconds", type=float, default=0.0, help="each task sleeps this long (seconds)")
    args = parser.parse_args()
    trees = {"base": args.base.resolve()}
    trees.update({f"other{i + 1}": tree.resolve() for i, tree in enumerate(args.others)})
    trees["this"] = HERE
    for tree in trees.values():
        if not (tree / "headrace" / "__init__.py").exists() or not (tree / "benchmarks" / "launch.py").exists():
            parser.error(f"{tree} is not a headrace source tree (no headrace/__init__.py or benchmarks/launch.py)")
    results: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
    for i in range(args.runs):
        for side, tree in trees.items():
            figures = _run(tree, args.tries, args.db, args.task_seconds)
            results[side].append(figures)
            print(f"run {i + 1} {side}: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()), file=sys.stderr)
    print(
        f"db={args.db} tries={args.tries} task_seconds={args.task_seconds:g} runs={args.runs} (medians; "
        + "; ".join(f"{side} = {tree}" for side, tree in trees.items() if side != "this")
        + ")"
    )
    print(f"{'figure':<26}" + "".join(f"{side:>10}" for side in trees) + f"{'change':>10}")
    for name in FIGURES:
        if any(name not in r for side in results.values() for r in side):
            continue
        medians = {side: statistics.median(r[name] for r in results[side]) for side in trees}
        b, t = medians["base"], medians["this"]
        change = f"{(t - b) / b * 100:+.0f}%" if b else "-"
        print(f"{name:<26}" + "".join(f"{m:>10.1f}" for m in medians.values()) + f"{change:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
