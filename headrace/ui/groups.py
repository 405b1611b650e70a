"""Task groups and edge labels as the graph and grid show them, read from the serialized DAG.

A group's state in a run is the aggregate of its tasks' states: the first of
:data:`STATE_PRIORITY` that any of them has (Airflow's order), so a group
with one failed task is failed and one whose tasks all succeeded or were
skipped is success.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from headrace.dagfiles.serialization import group_task_ids
from headrace.states import TaskInstanceState as TI

STATE_PRIORITY: tuple[str, ...] = (
    TI.FAILED.value,
    TI.UPSTREAM_FAILED.value,
    TI.UP_FOR_RETRY.value,
    TI.UP_FOR_RESCHEDULE.value,
    TI.DEFERRED.value,
    TI.QUEUED.value,
    TI.SCHEDULED.value,
    TI.RUNNING.value,
    TI.NONE.value,
    TI.SUCCESS.value,
    TI.SKIPPED.value,
    TI.REMOVED.value,
)
"""Task instance states from the one that decides a group's state first to the last."""

_RANK = {state: i for i, state in enumerate(STATE_PRIORITY)}


def aggregate_state(states: Iterable[str]) -> str | None:
    """The state of a group whose task instances have ``states``; None if there are none.

    An unknown state ranks after every known one.
    """
    best: str | None = None
    for state in states:
        if best is None or _RANK.get(state, len(_RANK)) < _RANK.get(best, len(_RANK)):
            best = state
    return best


class UiGroup(BaseModel):
    """A task group of the DAG's current version."""

    id: str
    """The full group id (``outer.inner``)."""
    label: str
    """The id as written, without the parents' prefix."""
    parent: str | None
    tooltip: str
    ui_color: str
    ui_fgcolor: str
    children: list[str]
    """Direct members (task and group ids), in the order they were added."""
    task_ids: list[str]
    """Every task inside, nested groups included."""


def ui_groups(serialized: Mapping[str, Any]) -> list[UiGroup]:
    """The groups of a serialized DAG, parents before children (``[]`` without groups)."""
    raw: Mapping[str, Mapping[str, Any]] = serialized.get("task_groups") or {}

    def depth(gid: str) -> int:
        parent = raw[gid].get("parent")
        return 0 if parent is None or parent not in raw else depth(parent) + 1

    return [
        UiGroup(
            id=gid,
            label=str(g.get("label") or gid),
            parent=g.get("parent"),
            tooltip=str(g.get("tooltip") or ""),
            ui_color=str(g.get("ui_color") or "CornflowerBlue"),
            ui_fgcolor=str(g.get("ui_fgcolor") or "#000"),
            children=list(g.get("children", ())),
            task_ids=group_task_ids(raw, gid),
        )
        for gid, g in sorted(raw.items(), key=lambda item: (depth(item[0]), item[0]))
    ]


def edge_labels(serialized: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(upstream, downstream, label)`` of every labelled edge, sorted."""
    info: Mapping[str, Mapping[str, Mapping[str, str]]] = serialized.get("edge_info") or {}
    return sorted(
        (up, down, str(data["label"]))
        for up, downs in info.items()
        for down, data in downs.items()
        if data.get("label")
    )


class GridRow(BaseModel):
    """One row of the grid: a task or a group (which the page expands and collapses)."""

    id: str
    group: bool
    """True for a group row (its cells show the aggregated state)."""
    depth: int
    """Nesting level: 0 at the DAG's top level."""
    parent: str | None
    """The group the row is in (None at the top level)."""


def grid_rows(task_ids: Sequence[str], groups: Sequence[UiGroup]) -> list[GridRow]:
    """Rows in tree order: at each level, tasks and groups in the order of their first task in ``task_ids``.

    ``task_ids`` is the grid's task order (topological, then tasks of older
    versions); a task not in any current group is a top-level row.
    """
    position = {tid: i for i, tid in enumerate(task_ids)}
    by_id = {g.id: g for g in groups}
    parent_of: dict[str, str] = {}
    for g in groups:
        for child in g.children:
            parent_of[child] = g.id
    top = [tid for tid in task_ids if tid not in parent_of] + [g.id for g in groups if g.parent is None]

    def first(node: str) -> int:
        if node in by_id:
            return min((position.get(t, len(position)) for t in by_id[node].task_ids), default=len(position))
        return position.get(node, len(position))

    rows: list[GridRow] = []

    def walk(nodes: Iterable[str], depth: int, parent: str | None) -> None:
        for node in sorted(nodes, key=lambda n: (first(n), n)):
            if node in by_id:
                rows.append(GridRow(id=node, group=True, depth=depth, parent=parent))
                walk([c for c in by_id[node].children if c in by_id or c in position], depth + 1, node)
            elif node in position:
                rows.append(GridRow(id=node, group=False, depth=depth, parent=parent))

    walk(top, 0, None)
    return rows


__all__ = ["STATE_PRIORITY", "GridRow", "UiGroup", "aggregate_state", "edge_labels", "grid_rows", "ui_groups"]
