"""priority_weights (the weight_rule sums) agrees with the plain definition on random DAGs."""

from __future__ import annotations

import random

import pytest

from headrace import DAG
from headrace.authoring.setup_teardown import flat_relatives
from headrace.dagfiles.task_options import priority_weights
from headrace.operators import EmptyOperator


@pytest.mark.parametrize("seed", range(20))
def test_sums_match_the_definition(seed: int) -> None:
    rnd = random.Random(seed)
    with DAG(f"r{seed}") as dag:
        tasks = [
            EmptyOperator(
                task_id=f"t{i}",
                priority_weight=rnd.choice([1, 1, 2, 5, -1]),
                weight_rule=rnd.choice(["downstream", "upstream", "absolute"]),
            )
            for i in range(rnd.randint(1, 30))
        ]
        for i, task in enumerate(tasks):
            for j in range(i + 1, len(tasks)):
                if rnd.random() < 0.15:
                    task >> tasks[j]
    nodes = dag.task_dict
    expected = {
        tid: t.priority_weight
        + (
            0
            if t.weight_rule == "absolute"
            else sum(nodes[r].priority_weight for r in flat_relatives(nodes, tid, upstream=t.weight_rule == "upstream"))
        )
        for tid, t in nodes.items()
    }
    assert priority_weights(nodes) == expected
