"""An in-memory cache of serialized DAGs by ``dag_version.id``, with each DAG's task order.

A ``dag_version`` row never changes once written, so its parsed form can be
kept for the life of the scheduler. A run is read with its own version
(``dag_run.dag_version_id``); an unfinished run moves to its DAG's new version
when one is parsed (:mod:`headrace.scheduler.integrity`, Airflow 3's
``verify_integrity``), a finished one keeps the version it ran with.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from headrace.authoring import graph
from headrace.dagfiles.serialization import SerializedDag
from headrace.db.models import DagVersion


class DagCache:
    """``SerializedDag`` and task order per ``dag_version.id``, loaded once each."""

    def __init__(self) -> None:
        self._dags: dict[int, SerializedDag] = {}
        self._orders: dict[int, list[str]] = {}

    def get(self, session: Session, version_id: int) -> SerializedDag:
        """The serialized DAG of ``version_id``. Raises ``KeyError`` if there is no such version."""
        sdag = self._dags.get(version_id)
        if sdag is None:
            row = session.get(DagVersion, version_id)
            if row is None:
                raise KeyError(f"no dag_version with id {version_id}")
            sdag = SerializedDag.from_dict(row.serialized)
            downstream = {tid: sdag.tasks[tid].downstream_task_ids for tid in sorted(sdag.tasks)}  # ties by id
            self._orders[version_id] = graph.topological_order(downstream, dag_id=sdag.dag_id, fileloc=sdag.fileloc)
            self._dags[version_id] = sdag
        return sdag

    def order(self, session: Session, version_id: int) -> list[str]:
        """The task ids of ``version_id`` in topological order."""
        self.get(session, version_id)
        return self._orders[version_id]

    def __len__(self) -> int:
        return len(self._dags)


__all__ = ["DagCache"]
