"""Cost of weight_rule: computing every task's priority (Airflow's priority_weight_total) for a DAG.

    python benchmarks/priority_weights.py [--tasks 1000] [--repeat 5]

Builds three DAGs of ``--tasks`` EmptyOperators — a chain (the worst case for
``downstream``: task i has tasks - i - 1 descendants), a fan (one root before
all the others) and a flat DAG — serializes each, and times
``SerializedDag.priority_weights`` (what a DAG run's creation reads, once per
stored version held by the scheduler's cache) for each weight rule. Prints the
median and best in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from headrace import DAG, chain
from headrace.dagfiles.serialization import SerializedDag, serialize_dag
from headrace.operators import EmptyOperator


def build(shape: str, n: int, rule: str) -> SerializedDag:
    """A serialized DAG of ``n`` tasks shaped ``chain``, ``fan`` or ``flat`` with ``weight_rule=rule``."""
    with DAG(f"{shape}_{rule}", default_args={"weight_rule": rule}) as dag:
        tasks = [EmptyOperator(task_id=f"t{i}") for i in range(n)]
        if shape == "chain":
            chain(*tasks)
        elif shape == "fan":
            tasks[0] >> tasks[1:]
    return SerializedDag.from_dict(serialize_dag(dag))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'shape':6} {'weight_rule':11} {'median ms':>10} {'best ms':>8}")
    for shape in ("chain", "fan", "flat"):
        for rule in ("downstream", "upstream", "absolute"):
            times = []
            for _ in range(args.repeat):
                sdag = build(shape, args.tasks, rule)
                start = time.perf_counter()
                weights = sdag.priority_weights
                times.append((time.perf_counter() - start) * 1000)
            assert len(weights) == args.tasks
            print(f"{shape:6} {rule:11} {statistics.median(times):10.1f} {min(times):8.1f}")


if __name__ == "__main__":
    main()
