"""The DAGs a DAG is linked to through its tasks: an ExternalTaskSensor waits on another DAG (that DAG is
upstream), a TriggerDagRunOperator triggers one and an ExternalTaskMarker clears one (downstream) — and the
same links seen from the other side. Shown beside the asset links on the DAG's pages.

The references are the ``external`` field of the serialized tasks of each active DAG's current version; only
versions whose text names ``"external"`` (and, for the other side, this DAG's id) are read, so a page load
does not parse every DAG.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text, and_, cast, select
from sqlalchemy.orm import Session

from headrace.db.models import DagModel, DagVersion

KINDS: dict[str, tuple[str, str, str]] = {
    "sensor": ("upstream", "downstream", "ExternalTaskSensor"),
    "trigger": ("downstream", "upstream", "TriggerDagRunOperator"),
    "marker": ("downstream", "upstream", "ExternalTaskMarker"),
}
"""kind → (where the referenced DAG is for the referring DAG, where the referring DAG is for the referenced one,
the operator's name)."""


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _references(serialized: dict[str, Any]) -> list[tuple[str, str]]:
    """``(kind, dag_id)`` of every task of a serialized DAG that refers to another DAG by a literal id."""
    out: list[tuple[str, str]] = []
    for task in (serialized.get("tasks") or {}).values():
        ref = task.get("external") or {}
        target = ref.get("dag_id")
        if ref.get("kind") in KINDS and isinstance(target, str) and "{{" not in target and "{%" not in target:
            out.append((ref["kind"], target))
    return out


def task_links(session: Session, dag_id: str) -> list[dict[str, Any]]:
    """``[{"direction": "upstream" | "downstream", "operator": name, "dags": [dag ids]}]``: the DAGs linked to
    ``dag_id`` through those operators (in its tasks or theirs), each list sorted, without itself; only
    relations that have DAGs, upstream first."""
    text = cast(DagVersion.serialized, Text)
    current = (
        select(DagVersion.dag_id, DagVersion.serialized)
        .join(DagModel, and_(DagModel.dag_id == DagVersion.dag_id, DagModel.version_hash == DagVersion.version_hash))
        .where(DagModel.is_active.is_(True), text.like('%"external"%'))
    )
    found: dict[tuple[str, str], set[str]] = {}
    own = session.execute(current.where(DagVersion.dag_id == dag_id)).first()
    if own is not None:
        for kind, target in _references(own.serialized or {}):
            direction, _, name = KINDS[kind]
            found.setdefault((direction, name), set()).add(target)
    quoted = _like_escaped(json.dumps(dag_id))
    for other, serialized in session.execute(
        current.where(DagVersion.dag_id != dag_id, text.like(f"%{quoted}%", escape="\\"))
    ):
        for kind, target in _references(serialized or {}):
            if target == dag_id:
                _, direction, name = KINDS[kind]
                found.setdefault((direction, name), set()).add(other)
    order = {"upstream": 0, "downstream": 1}
    return [
        {"direction": direction, "operator": name, "dags": sorted(dags - {dag_id})}
        for (direction, name), dags in sorted(found.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
        if dags - {dag_id}
    ]


__all__ = ["KINDS", "task_links"]
