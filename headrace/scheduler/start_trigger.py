"""Tries that start in the triggerer (``start_from_trigger``): the scheduler defers them itself, no process.

:func:`~headrace.scheduler.readiness.examine_run` hands :meth:`TriggerStarter.start` the task instances it
moved to ``scheduled`` for a new try (``none → scheduled``, a due retry) whose task has a ``start_trigger``
(:mod:`headrace.authoring.start_trigger`). For each, in the same transaction:

1. the stored ``trigger_kwargs`` are rendered when a string holds Jinja, with the try's context keys built
   here from the DAG run and the serialized DAG (``run_id``, ``logical_date``, ``ds``, ``ts``, the data
   interval, ``params``, ``dag_run``, ``map_index``, ``try_number``, ``macros``, …); keys that need a task
   process (``ti.xcom_pull``, ``var``, ``conn``, the DAG's ``user_defined_macros``) are not there;
2. :func:`~headrace.db.triggers.start_in_triggerer` writes the trigger row, moves the task instance
   ``scheduled → deferred`` with ``try_number + 1`` and adds the try's row, with no host and no process;
3. a line in the try's log says so.

A template that does not render fails the try as a failed trigger does: the task instance resumes in
``__fail__`` at once and its process raises ``TaskDeferralError`` with the error (retries apply). Nothing
here imports DAG code: it reads the serialized DAG only, as the rest of the scheduler.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.authoring.context import RunInfo, build_context
from headrace.authoring.start_trigger import has_templates, render_trigger_kwargs
from headrace.authoring.triggers import TRIGGER_FAILURE
from headrace.config import Settings
from headrace.dagfiles.serialization import SerializedDag
from headrace.db import queries
from headrace.db.models import DagRun, TaskInstance
from headrace.db.triggers import TriggerStart, start_in_triggerer
from headrace.logs.files import append_line, try_log_path
from headrace.states import TaskInstanceState as TI
from headrace.types import Context

log = logging.getLogger(__name__)


class TriggerStarter:
    """Starts tries in the triggerer (see the module docstring). ``settings``: the log folder and
    ``core.dag_run_conf_overrides_params``."""

    def __init__(self, settings: Settings) -> None:
        self.base_log_folder = settings.base_log_folder
        self.conf_overrides = settings.get_bool("core", "dag_run_conf_overrides_params")
        self.started = 0
        """How many tries it started in the triggerer."""

    def start(self, session: Session, sdag: SerializedDag, ti_ids: Iterable[int], now: datetime) -> list[int]:
        """Defer each of ``ti_ids`` (task instances of one run of ``sdag``, ``scheduled`` for a new try) to its
        task's trigger; return the ids that took it (the others were moved on meanwhile)."""
        rows = session.execute(
            select(
                TaskInstance.id,
                TaskInstance.try_number,
                TaskInstance.dag_run_id,
                TaskInstance.dag_id,
                TaskInstance.run_id,
                TaskInstance.task_id,
                TaskInstance.map_index,
            ).where(TaskInstance.id.in_(list(ti_ids)), TaskInstance.state == TI.SCHEDULED.value)
        ).all()
        run_info: RunInfo | None = None
        started: list[int] = []
        for ti_id, try_number, run_pk, dag_id, run_id, task_id, map_index in rows:
            spec = sdag.tasks[task_id].start_trigger
            if spec is None:
                continue
            kwargs: Any = spec["trigger_kwargs"]
            failure: tuple[str, list[str]] | None = None
            if has_templates(kwargs):
                if run_info is None:
                    run_info = _run_info(session, run_pk)
                try:
                    context = self._context(sdag, task_id, run_info, map_index, try_number + 1)
                    kwargs = render_trigger_kwargs(kwargs, context, native=bool(spec.get("native")))
                except Exception as exc:  # noqa: BLE001 - a user's template: its failure fails the try, not the loop
                    error = f"{TRIGGER_FAILURE}: cannot render start_trigger_args.trigger_kwargs: {type(exc).__name__}: {exc}"
                    failure = (error, traceback.format_exception(exc))
            path = try_log_path(self.base_log_folder, dag_id, run_id, task_id, try_number + 1, map_index)
            start = TriggerStart(
                ti_id=ti_id,
                try_number=try_number,
                dag_run_pk=run_pk,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                log_path=str(path),
                next_method=spec["next_method"],
                next_kwargs=json.dumps(spec["next_kwargs"]) if spec.get("next_kwargs") else None,
                timeout=spec.get("timeout"),
                trigger=None if failure is not None else (spec["trigger_cls"], json.dumps(kwargs)),
                failure=failure,
            )
            if not start_in_triggerer(session, start, now):
                continue
            started.append(ti_id)
            self.started += 1
            self._say(path, start, spec)
        return started

    def _context(self, sdag: SerializedDag, task_id: str, run: RunInfo, map_index: int, try_number: int) -> Context:
        """The try's template context, from the run and the serialized DAG (no DAG code imported). Raises
        ``ParamValidationError`` for a conf value its param's schema refuses."""
        dag = SimpleNamespace(dag_id=sdag.dag_id, params=sdag.params_dict)
        task = SimpleNamespace(task_id=task_id, params=sdag.task_params(task_id), dag_id=sdag.dag_id)
        ti = SimpleNamespace(
            dag_id=sdag.dag_id, task_id=task_id, run_id=run.run_id, map_index=map_index, try_number=try_number
        )
        return build_context(
            cast(Any, dag), cast(Any, task), run, cast(Any, ti), conf_overrides_params=self.conf_overrides
        )

    def _say(self, path: Path, start: TriggerStart, spec: Any) -> None:
        if start.failure is not None:
            message, level = f"try {start.try_number + 1} could not start in the triggerer: {start.failure[0]}", "ERROR"
        else:
            timeout = f" (timeout {start.timeout:g} s)" if start.timeout is not None else ""
            message, level = (
                f"try {start.try_number + 1} started in the triggerer, with no task process: deferred to "
                f"{spec['trigger_cls']}, resuming in {start.next_method}{timeout}",
                "INFO",
            )
        try:
            append_line(path, "scheduler", message, level)
        except OSError as exc:
            log.warning("cannot write to %s: %s", path, exc)


def _run_info(session: Session, run_pk: int) -> RunInfo:
    run = session.get(DagRun, run_pk)
    assert run is not None
    return RunInfo.from_run(run, queries.previous_success_run(session, run.dag_id, run.logical_date))


__all__ = ["TriggerStarter"]
