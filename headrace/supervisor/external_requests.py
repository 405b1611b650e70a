"""The supervisor's answer to an ExternalTaskSensor: the runs of another DAG at some logical dates, and the
states of their task instances.

The task process never touches the database; it asks over its channel (``GetExternalTaskStates``) and
decides from the answer (the sensor's counting rules live with the sensor, in
:mod:`headrace.authoring.external_task`). One short read transaction per poke.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring.schedules import ensure_aware
from headrace.dagfiles.serialization import group_task_ids
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance
from headrace.supervisor.protocol import ExternalTaskStates, GetExternalTaskStates


def group_members(serialized: Mapping[str, Any], group_id: str) -> list[str] | None:
    """The ids of the tasks in task group ``group_id`` of a serialized DAG, nested groups included, sorted;
    None when the DAG has no such group."""
    groups: Mapping[str, Any] = serialized.get("task_groups") or {}
    if group_id not in groups:
        return None
    tasks = serialized.get("tasks") or {}
    return sorted({t for t in group_task_ids(groups, group_id) if t in tasks})


def _missing(session: Session, message: GetExternalTaskStates) -> list[str] | None:
    """The first of the DAG, its file, the tasks and the group asked for that does not exist (latest version)."""
    model = session.get(DagModel, message.dag_id)
    if model is None:
        return ["dag", message.dag_id]
    if not model.fileloc or not os.path.exists(model.fileloc):
        return ["dag_file", message.dag_id]
    if not message.task_ids and message.task_group_id is None:
        return None
    serialized = session.scalar(
        select(DagVersion.serialized).where(
            DagVersion.dag_id == message.dag_id, DagVersion.version_hash == model.version_hash
        )
    )
    data: Mapping[str, Any] = serialized or {}
    for task_id in message.task_ids or ():
        if task_id not in (data.get("tasks") or {}):
            return ["task", task_id]
    if message.task_group_id is not None and group_members(data, message.task_group_id) is None:
        return ["task_group", message.task_group_id]
    return None


def get_external_task_states(db: Database, message: GetExternalTaskStates) -> ExternalTaskStates:
    """Answer ``GetExternalTaskStates`` (see its docstring for the shape)."""
    dates: list[datetime] = [ensure_aware(d) for d in message.logical_dates]
    with db.read_session() as session:
        missing = _missing(session, message) if message.check_existence else None
        if missing is not None or not dates:
            return ExternalTaskStates(runs=[], missing=missing)
        runs = session.execute(
            select(DagRun.id, DagRun.run_id, DagRun.logical_date, DagRun.state, DagRun.dag_version_id).where(
                DagRun.dag_id == message.dag_id, DagRun.logical_date.in_(dates)
            )
        ).all()
        wanted: dict[int, list[str]] = {}
        groups: dict[str, list[str]] = {}
        if message.task_ids:
            wanted = {run.id: list(message.task_ids) for run in runs}
        elif message.task_group_id is not None:
            versions: dict[int, list[str] | None] = {}
            for run in runs:
                if run.dag_version_id not in versions:
                    serialized = session.scalar(
                        select(DagVersion.serialized).where(DagVersion.id == run.dag_version_id)
                    )
                    versions[run.dag_version_id] = group_members(serialized or {}, message.task_group_id)
                ids = versions[run.dag_version_id]
                if ids is not None:
                    groups[run.run_id] = ids
                    wanted[run.id] = ids
        states: dict[int, list[list[Any]]] = {run.id: [] for run in runs}
        every = sorted({t for ids in wanted.values() for t in ids})
        if every:
            rows = session.execute(
                select(TaskInstance.dag_run_id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)
                .where(TaskInstance.dag_run_id.in_(list(wanted)), TaskInstance.task_id.in_(every))
                .order_by(TaskInstance.dag_run_id, TaskInstance.task_id, TaskInstance.map_index)
            )
            for run_pk, task_id, map_index, state in rows:
                if task_id in wanted.get(run_pk, ()):
                    states[run_pk].append([task_id, map_index, str(state)])
        return ExternalTaskStates(
            runs=[
                {
                    "logical_date": ensure_aware(run.logical_date).isoformat(),
                    "run_id": run.run_id,
                    "state": str(run.state),
                    "task_instances": states[run.id],
                }
                for run in runs
            ],
            group_task_ids=groups,
        )


__all__ = ["get_external_task_states", "group_members"]
