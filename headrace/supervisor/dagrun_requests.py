"""The supervisor's answers to a task that triggers another DAG (the TriggerDagRunOperator).

The task process asks; the supervisor creates the run through the same path as the API, the UI
and the CLI (:func:`headrace.scheduler.runs.trigger_dag`: the DAG must be active, the conf a JSON
object that the DAG's params accept, the run id and logical date free), so a run a task makes is
like any manual run. When the run exists and the task asked for ``reset_dag_run``, its task
instances are cleared (:func:`headrace.scheduler.user_actions.clear_task_instances`) so the
scheduler runs them again. Each request is one short transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring.schedules import ensure_aware
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun
from headrace.exceptions import DagRunAlreadyExists, HeadraceError
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.user_actions import clear_task_instances
from headrace.supervisor.protocol import DagRunStateValue, DagRunTriggered, Error, GetDagRunState, TriggerDagRun


def _existing(session: Session, message: TriggerDagRun, when: datetime) -> DagRun | None:
    if message.run_id is not None:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == message.dag_id, DagRun.run_id == message.run_id)
        ).first()
        if run is not None:
            return run
    return session.scalars(select(DagRun).where(DagRun.dag_id == message.dag_id, DagRun.logical_date == when)).first()


def trigger_dag_run(
    db: Database, message: TriggerDagRun, now: datetime | None = None, *, run_id_pattern: str | None = None
) -> DagRunTriggered | Error:
    """Answer ``TriggerDagRun`` (see its docstring); a refusal (unknown DAG, conf the params reject, paused DAG
    with ``fail_when_dag_is_paused``, a ``run_id`` that ``run_id_pattern`` — ``scheduler.allowed_run_id_pattern``
    — does not match) is an ``Error`` whose message starts with the exception's name."""
    now = now or datetime.now(UTC)
    when = ensure_aware(message.logical_date) if message.logical_date is not None else now
    with db.session() as session:
        if message.fail_when_dag_is_paused:
            model = session.get(DagModel, message.dag_id)
            if model is not None and model.is_paused:
                return Error(message=f"DagIsPaused: Dag {message.dag_id} is paused")
        try:
            run = trigger_dag(
                session,
                message.dag_id,
                conf=message.conf,
                logical_date=when,
                run_id=message.run_id,
                now=now,
                allowed_run_id_pattern=run_id_pattern,
            )
            return DagRunTriggered(run_id=run.run_id, logical_date=run.logical_date, outcome="created")
        except DagRunAlreadyExists as exc:
            existing = _existing(session, message, when)
            if existing is None:  # raced with a delete: report what trigger_dag said
                return Error(message=f"DagRunAlreadyExists: {exc.message}")
            if not message.reset_dag_run:
                return DagRunTriggered(run_id=existing.run_id, logical_date=existing.logical_date, outcome="exists")
            clear_task_instances(session, existing, None, now=now)
            return DagRunTriggered(run_id=existing.run_id, logical_date=existing.logical_date, outcome="cleared")
        except HeadraceError as exc:
            return Error(message=f"{type(exc).__name__}: {exc.message}")


def get_dag_run_state(db: Database, message: GetDagRunState) -> DagRunStateValue:
    """Answer ``GetDagRunState``: the run's state, None when there is no such run."""
    with db.read_session() as session:
        state = session.scalar(
            select(DagRun.state).where(DagRun.dag_id == message.dag_id, DagRun.run_id == message.run_id)
        )
    return DagRunStateValue(state=None if state is None else str(state))
