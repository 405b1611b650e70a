"""The order of a DAG's tasks and its cycles, over plain task ids.

One copy of the rule for everyone who orders tasks: :class:`~headrace.authoring.dag.DAG`
(operators), the scheduler's cache and the UI (serialized DAGs). Each passes
``downstream``, a mapping of task id to the ids of its downstream tasks, in the
order it wants ties broken (a DAG's insertion order, or sorted ids). Ids that
are not keys of the mapping (dangling references, reported by
``DAG.validate()``) are ignored. Pure: no operators, no database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping

from headrace.exceptions import DagCycleError


def find_cycle(downstream: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle as ``[a, b, c, a]``, or None (iterative DFS from the keys in order, downstream ids sorted)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(downstream, white)
    for root in downstream:
        if colour[root] != white:
            continue
        path: list[str] = [root]
        iters: list[Iterator[str]] = [iter(sorted(downstream[root]))]
        colour[root] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
                continue
            if nxt not in colour:
                continue  # dangling reference
            if colour[nxt] == grey:
                return path[path.index(nxt) :] + [nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(sorted(downstream[nxt])))
    return None


def cycle_error(
    cycle: list[str], *, dag_id: str | None = None, fileloc: str | None = None, lineno: int | None = None
) -> DagCycleError:
    """The ``DagCycleError`` naming ``cycle`` (``DAG 'x' has a cycle a → b → a``, with the DAG's file and line)."""
    of = f"DAG {dag_id!r}" if dag_id is not None else "the graph"
    return DagCycleError(f"{of} has a cycle {' → '.join(cycle)}", fileloc=fileloc, lineno=lineno)


def topological_order(
    downstream: Mapping[str, Iterable[str]],
    *,
    dag_id: str | None = None,
    fileloc: str | None = None,
    lineno: int | None = None,
) -> list[str]:
    """The keys of ``downstream`` with every task after all its upstream tasks; ties in the mapping's order.

    Raises ``DagCycleError`` naming a cycle (and ``dag_id``, ``fileloc:lineno`` when given) if there is one.
    """
    position = {tid: i for i, tid in enumerate(downstream)}
    children = {
        tid: sorted({d for d in downs if d in position}, key=position.__getitem__) for tid, downs in downstream.items()
    }
    indegree = dict.fromkeys(downstream, 0)
    for downs in children.values():
        for down in downs:
            indegree[down] += 1
    ready = deque(tid for tid, n in indegree.items() if n == 0)
    order: list[str] = []
    while ready:
        tid = ready.popleft()
        order.append(tid)
        for down in children[tid]:
            indegree[down] -= 1
            if indegree[down] == 0:
                ready.append(down)
    if len(order) < len(downstream):
        cycle = find_cycle(downstream) or sorted(set(downstream) - set(order))
        raise cycle_error(cycle, dag_id=dag_id, fileloc=fileloc, lineno=lineno)
    return order


__all__ = ["cycle_error", "find_cycle", "topological_order"]
