"""Skips held back for ``wait_for_past_depends_before_skipping``: the ``skipmixin_key`` XCom (Airflow's key).

A branch or short-circuit task skips its downstream task instances at once, except those whose task sets
``wait_for_past_depends_before_skipping`` (with ``depends_on_past``): as Airflow's SkipMixin does, those are
left for the scheduler, and the skipping task records ``{"skipped": [task_id, …]}`` under the XCom key
``skipmixin_key``. The scheduler reads it (:func:`skipped_by_upstream`) and skips such a task instance once
its ``depends_on_past`` lets it go. A new try of the skipping task clears its XComs, and so the mark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from headrace.db.models import XCom

SKIP_MARK_KEY = "skipmixin_key"
"""The XCom key of the mark (Airflow's ``XCOM_SKIPMIXIN_KEY``)."""


def record_skip_mark(
    session: Session,
    *,
    dag_run_pk: int,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    skipped: Iterable[str],
    now: datetime,
) -> None:
    """Record that task instance (``task_id``, ``map_index``) of run ``dag_run_pk`` skips the tasks ``skipped``
    (ids), added to any mark it recorded before in this try."""
    where = (XCom.dag_run_id == dag_run_pk, XCom.task_id == task_id, XCom.map_index == map_index)
    before = session.scalar(select(XCom.value).where(*where, XCom.key == SKIP_MARK_KEY))
    known: list[str] = list(json.loads(before).get("skipped", [])) if before else []
    value = json.dumps({"skipped": sorted({*known, *skipped})})
    session.execute(delete(XCom).where(*where, XCom.key == SKIP_MARK_KEY))
    session.add(
        XCom(
            dag_run_id=dag_run_pk,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            key=SKIP_MARK_KEY,
            value=value,
            created_at=now,
        )
    )


def skipped_by_upstream(
    session: Session, dag_run_pk: int, task_id: str, upstream_ids: Iterable[str], map_indexes: Iterable[int]
) -> bool:
    """True if a task instance of one of ``upstream_ids`` at one of ``map_indexes`` in run ``dag_run_pk``
    recorded a skip of ``task_id`` (:func:`record_skip_mark`)."""
    ids = sorted(upstream_ids)
    if not ids:
        return False
    values = session.scalars(
        select(XCom.value).where(
            XCom.dag_run_id == dag_run_pk,
            XCom.task_id.in_(ids),
            XCom.map_index.in_(sorted(set(map_indexes))),
            XCom.key == SKIP_MARK_KEY,
        )
    )
    return any(task_id in json.loads(v).get("skipped", []) for v in values)


__all__ = ["SKIP_MARK_KEY", "record_skip_mark", "skipped_by_upstream"]
