"""Where an ExternalTaskMarker points: the task instance of another DAG that clearing the marker clears too.

The marker's ``external_dag_id``, ``external_task_id`` and ``logical_date`` are templates (by default
``"{{ logical_date.isoformat() }}"``). They are taken as the marker's latest try rendered them (recorded in
``rendered_task_instance_fields``: with the DAG's own macros), or, when it has not run, rendered here in the
sandboxed template environment with the run's keys (``logical_date``, ``ds``, ``ts``, the data interval,
``run_id``, ``dag_run``, ``params``, ``macros``) — as Airflow renders it when clearing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring import macros
from headrace.authoring.context import RunInfo, make_jinja_env
from headrace.authoring.schedules import ensure_aware
from headrace.db.models import DagRun, RenderedTaskInstanceFields
from headrace.exceptions import InvalidRequest

FIELDS = (("external_dag_id", "dag_id"), ("external_task_id", "task_id"), ("logical_date", "logical_date"))
"""(template field name, key in the serialized ``external`` reference)."""


@dataclass(frozen=True)
class MarkerTarget:
    """The task of another DAG a marker points at."""

    dag_id: str
    task_id: str
    logical_date: datetime
    """UTC-aware."""


def _run_context(run: DagRun, params: Mapping[str, Any]) -> dict[str, Any]:
    info = RunInfo.from_run(run)
    logical = ensure_aware(info.logical_date)
    ts = logical.isoformat()
    return {
        "dag_run": info,
        "run_id": info.run_id,
        "logical_date": logical,
        "ds": logical.strftime("%Y-%m-%d"),
        "ds_nodash": logical.strftime("%Y%m%d"),
        "ts": ts,
        "ts_nodash": logical.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "data_interval_start": info.data_interval_start,
        "data_interval_end": info.data_interval_end,
        "params": {**params, **info.conf},
        "macros": macros,
    }


def marker_target(
    session: Session, run: DagRun, ti_id: int, task_id: str, reference: Mapping[str, Any], params: Mapping[str, Any]
) -> MarkerTarget:
    """Where marker ``task_id`` (task instance ``ti_id`` of ``run``, serialized ``reference``) points.

    Raises ``InvalidRequest`` (400) naming the marker when a template does not render or the logical date
    is not ISO 8601.
    """
    values = {field: str(reference.get(key) or "") for field, key in FIELDS}
    if any("{{" in v or "{%" in v for v in values.values()):
        recorded = session.scalar(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.task_instance_id == ti_id
            )
        )
        if recorded and all(isinstance(recorded.get(f), str) for f in values):
            values = {f: str(recorded[f]) for f in values}
        else:
            env = make_jinja_env(native=False)
            context = _run_context(run, params)
            try:
                values = {f: env.from_string(v).render(context) for f, v in values.items()}
            except jinja2.TemplateError as exc:
                raise InvalidRequest(
                    f"ExternalTaskMarker {run.dag_id}.{task_id}: its templates do not render: {exc}"
                ) from None
    try:
        when = ensure_aware(datetime.fromisoformat(values["logical_date"].strip()))
    except ValueError:
        raise InvalidRequest(
            f"ExternalTaskMarker {run.dag_id}.{task_id}: logical_date {values['logical_date']!r} is not ISO 8601"
        ) from None
    return MarkerTarget(values["external_dag_id"], values["external_task_id"], when)


def target_run(session: Session, target: MarkerTarget) -> DagRun | None:
    """The run of the marked DAG at the target's logical date (None: there is none)."""
    return session.scalars(
        select(DagRun).where(DagRun.dag_id == target.dag_id, DagRun.logical_date == target.logical_date)
    ).first()


__all__ = ["MarkerTarget", "marker_target", "target_run"]
