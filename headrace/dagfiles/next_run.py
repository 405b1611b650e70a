"""The next scheduled run of a DAG, kept in ``dag.next_*``: computed from its timetable and latest scheduled run.

Shared by the DAG processor (after a parse) and the scheduler (after creating a run, or when a
manual trigger leaves the schedule to catch up); a module of its own so that ``headrace dags
trigger`` imports neither the processor nor the DAG file loader.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from headrace.authoring.schedules import DagRunInfo, DataInterval
from headrace.dagfiles.serialization import SerializedDag, next_runs
from headrace.db import queries
from headrace.db.models import DagModel
from headrace.exceptions import ScheduleError


def next_run_for(session: Session, sdag: SerializedDag, now: datetime) -> DagRunInfo | None:
    """The run the timetable asks for after the DAG's latest scheduled run (None: no run is due ever).

    Raises ``ScheduleError`` naming the DAG, with its file and line, if the
    timetable cannot be evaluated (database errors propagate as they are).
    """
    last = queries.last_scheduled_run(session, sdag.dag_id)
    interval = None
    if last is not None and last.data_interval_start is not None and last.data_interval_end is not None:
        interval = DataInterval(last.data_interval_start, last.data_interval_end)
    try:
        return next_runs(sdag, interval, now)
    except Exception as exc:  # noqa: BLE001 - user code or stored data: any failure is reported, not raised
        raise ScheduleError(
            f"DAG {sdag.dag_id!r}: schedule {sdag.timetable.summary!r} cannot be evaluated: "
            f"{type(exc).__name__}: {exc}",
            fileloc=sdag.fileloc,
            lineno=sdag.lineno or None,
        ) from None


def set_next_run(session: Session, dag: DagModel, sdag: SerializedDag, now: datetime) -> None:
    """Set ``dag.next_*`` from the timetable and the DAG's latest scheduled run (None when no run is due ever).

    Raises ``ScheduleError`` (see :func:`next_run_for`), leaving ``dag`` unchanged.
    """
    apply_next_run(dag, next_run_for(session, sdag, now))


def apply_next_run(dag: DagModel, info: DagRunInfo | None) -> None:
    """Set ``dag.next_*`` to ``info`` (None: no run is due ever)."""
    if info is None:
        dag.next_logical_date = dag.next_data_interval_start = dag.next_data_interval_end = None
        dag.next_run_after = None
    else:
        dag.next_logical_date = info.logical_date
        dag.next_data_interval_start = info.data_interval.start
        dag.next_data_interval_end = info.data_interval.end
        dag.next_run_after = info.run_after
