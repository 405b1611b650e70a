"""An in-memory cache of serialized DAGs by ``dag_version.id``, with each DAG's task order and the tasks whose
decision each task's state feeds.

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
from headrace.scheduler.mapping import xcom_sources


class DagCache:
    """``SerializedDag`` and task order per ``dag_version.id``, loaded once each."""

    def __init__(self) -> None:
        self._dags: dict[int, SerializedDag] = {}
        self._orders: dict[int, list[str]] = {}
        self._positions: dict[int, dict[str, int]] = {}
        self._dependents: dict[int, dict[str, frozenset[str]]] = {}

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

    def position(self, session: Session, version_id: int) -> dict[str, int]:
        """task id → its index in :meth:`order`."""
        positions = self._positions.get(version_id)
        if positions is None:
            positions = {tid: i for i, tid in enumerate(self.order(session, version_id))}
            self._positions[version_id] = positions
        return positions

    def dependents(self, session: Session, version_id: int) -> dict[str, frozenset[str]]:
        """task id → the tasks whose decision reads its instances' states: its direct downstream tasks, the
        tasks it is an indirect setup of (the setup constraint), and the mapped tasks whose length it pushes
        (a task of a mapped task group expands once that is known). A task missing here feeds none."""
        dependents = self._dependents.get(version_id)
        if dependents is None:
            sdag = self.get(session, version_id)
            found: dict[str, set[str]] = {tid: set(task.downstream_task_ids) for tid, task in sdag.tasks.items()}
            for tid, setups in sdag.indirect_setups.items():
                for setup in setups:
                    found.setdefault(setup, set()).add(tid)
            for tid, task in sdag.tasks.items():
                for source in xcom_sources(task.expand_input):
                    found.setdefault(source, set()).add(tid)
            dependents = {tid: frozenset(t for t in ids if t in sdag.tasks) for tid, ids in found.items()}
            self._dependents[version_id] = dependents
        return dependents

    def __len__(self) -> int:
        return len(self._dags)


__all__ = ["DagCache"]
