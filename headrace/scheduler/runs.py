"""DAG runs: create them (schedule, trigger, backfill), start them, finish them.

* :func:`create_runs` — for each DAG whose ``next_run_after`` has come, create
  the scheduled run the timetable asks for (state ``queued``) with all its task
  instances (state ``none``), then advance the DAG's ``next_*`` fields.
  ``catchup=True`` walks every interval since ``start_date``; ``catchup=False``
  jumps to the latest complete interval (the timetable decides both).
* :func:`trigger_dag` — a manual run (``manual__<iso now>``); its ``conf``
  overrides the DAG's params and every param is validated against its JSON
  schema first (a failure creates no run). Scheduled runs use the defaults,
  which were validated when the DAG file was parsed.
  The API, UI and CLI pass ``api.max_conf_bytes``, which it holds the conf to first (:func:`check_conf_size`).
* :func:`create_backfill` — one ``backfill`` run per interval in ``[start, end]``.
  Both wake the schedulers when the caller commits (:mod:`headrace.db.wakeup`).
* :func:`start_queued_runs` — ``queued → running`` within ``max_active_runs``.
* :func:`finish_runs` — a running run whose task instances have all finished
  ends ``failed`` if a leaf task is ``failed`` or ``upstream_failed`` (Airflow's
  rule: a teardown is not a leaf unless ``on_failure_fail_dagrun``, and a task
  followed only by such teardowns is), else ``success``.
  A task instance's ``priority_weight`` is its task's weight with the
  ``weight_rule`` applied (``SerializedDag.priority_weights``).
* :func:`enforce_dagrun_timeouts` — a running run older than its DAG's
  ``dagrun_timeout`` fails; its running task instances fail (their tries are
  stopped) and those not started are skipped, with end reason ``dagrun_timeout``.

User code never stops the scheduler: a DAG whose stored version cannot be read
or whose schedule raises when evaluated is skipped by :func:`create_runs` with
a log line and an import error on its file, and gets no further scheduled runs
until its file is parsed again; the other DAGs are scheduled as usual.

Runs count against ``max_active_runs`` while ``queued`` or ``running`` when
scheduled runs are created, and while ``running`` when queued runs start.
Every function takes an open session and the current time ``now`` (UTC-aware)
and never commits.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from headrace.authoring.params import resolve_params
from headrace.authoring.schedules import DataInterval, ensure_aware
from headrace.dagfiles.next_run import apply_next_run, set_next_run
from headrace.dagfiles.serialization import SerializedDag, next_runs
from headrace.db import locks, queries
from headrace.db.models import DagModel, DagRun, DagVersion, ImportError_, TaskInstance
from headrace.db.transitions import end_try, set_run_state, set_ti_state
from headrace.db.wakeup import notify_scheduler
from headrace.exceptions import (
    DagDefinitionError,
    DagNotFound,
    DagRunAlreadyExists,
    DagRunConfError,
    DagRunConfTooLarge,
    InvalidRequest,
    ScheduleError,
)
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.mapping import new_task_instances
from headrace.states import DagRunState, EndReason, TaskInstanceState

log = logging.getLogger(__name__)

MAX_BACKFILL_RUNS = 10_000
"""A backfill asking for more runs than this is refused (likely a wrong date range)."""

_LEAF_FAILURES = frozenset({TaskInstanceState.FAILED.value, TaskInstanceState.UPSTREAM_FAILED.value})


def run_id_for(run_type: str, logical_date: datetime) -> str:
    """Airflow's run id: ``<run_type>__<logical date in ISO 8601, UTC>``."""
    return f"{run_type}__{ensure_aware(logical_date).astimezone(UTC).isoformat()}"


def _version(session: Session, dag: DagModel) -> DagVersion:
    version = queries.current_version(session, dag)
    if version is None:  # only if someone deleted rows by hand
        raise DagNotFound(f"DAG {dag.dag_id!r} has no stored version {dag.version_hash}", dag_id=dag.dag_id)
    return version


def create_dag_run(
    session: Session,
    sdag: SerializedDag,
    version_id: int,
    *,
    run_id: str,
    run_type: str,
    logical_date: datetime,
    data_interval: DataInterval,
    now: datetime,
    conf: Mapping[str, Any] | None = None,
) -> DagRun:
    """Insert a queued DAG run and its task instances (state ``none``); return the run.

    One task instance per task at ``map_index = -1``; a mapped task whose input is all literal gets its
    indices ``0..n-1`` at once (n ≥ 1; as in Airflow, ``core.max_map_length`` holds pushed values, not
    literals); see :mod:`headrace.scheduler.mapping`.
    """
    run = DagRun(
        dag_id=sdag.dag_id,
        run_id=run_id,
        run_type=run_type,
        logical_date=logical_date,
        data_interval_start=data_interval.start,
        data_interval_end=data_interval.end,
        state=DagRunState.QUEUED.value,
        conf=dict(conf or {}),
        dag_version_id=version_id,
        queued_at=now,
        callbacks_done=False,
    )
    session.add(run)
    session.flush()
    session.add_all(
        TaskInstance(**values) for values in new_task_instances(sdag, dag_run_pk=run.id, run_id=run_id, now=now)
    )
    session.flush()
    return run


def create_runs(session: Session, now: datetime, *, cache: DagCache | None = None) -> int:
    """Create the due scheduled runs of active, unpaused DAGs; return how many were created.

    ``catchup=False`` DAGs first re-compute ``next_*`` at ``now``, so intervals
    missed while the scheduler was down are skipped. A DAG gets runs while ``next_run_after <= now`` and its queued + running runs
    are fewer than ``max_active_runs``. An existing run with the same run id
    (e.g. created by a backfill) is skipped, not duplicated. A DAG whose
    stored version cannot be read, or whose schedule raises, is skipped (see
    :func:`schedule_failed`); the others are scheduled.
    """
    cache = cache or DagCache()
    created = 0
    dags = queries.dags_due(session, now)
    active = queries.active_run_counts(session, [d.dag_id for d in dags])
    for dag in dags:
        try:
            version = _version(session, dag)
        except DagNotFound as exc:  # rows edited by hand: skip this DAG, keep scheduling the others
            log.error("%s", exc)
            continue
        try:
            created += _create_runs_of(session, dag, version, now, cache, active)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # noqa: BLE001 - the DAG's schedule (user code, stored data): skip it, schedule the others
            schedule_failed(session, dag, exc, now)
    session.flush()
    return created


def _create_runs_of(
    session: Session, dag: DagModel, version: DagVersion, now: datetime, cache: DagCache, active: dict[str, int]
) -> int:
    """Create the due scheduled runs of one DAG; return how many. Raises what its schedule raises."""
    created = 0
    sdag = cache.get(session, version.id)
    if not sdag.catchup:  # after downtime, jump to the latest complete interval (skip the missed ones)
        set_next_run(session, dag, sdag, now)
    while (
        dag.next_run_after is not None
        and dag.next_run_after <= now
        and dag.next_logical_date is not None
        and active.get(dag.dag_id, 0) < dag.max_active_runs
    ):
        interval = DataInterval(
            dag.next_data_interval_start or dag.next_logical_date, dag.next_data_interval_end or dag.next_logical_date
        )
        run_id = run_id_for("scheduled", dag.next_logical_date)
        if not queries.run_exists(session, dag.dag_id, run_id=run_id):
            create_dag_run(
                session,
                sdag,
                version.id,
                run_id=run_id,
                run_type="scheduled",
                logical_date=dag.next_logical_date,
                data_interval=interval,
                now=now,
            )
            active[dag.dag_id] = active.get(dag.dag_id, 0) + 1
            created += 1
            log.info("created DAG run %s of %s", run_id, dag.dag_id)
        info = next_runs(sdag, interval, now)
        if info is not None and info.logical_date <= dag.next_logical_date:
            log.error("timetable of %s did not advance past %s; no further runs", dag.dag_id, info.logical_date)
            info = None
        apply_next_run(dag, info)
    return created


def schedule_failed(session: Session, dag: DagModel, exc: BaseException, now: datetime) -> None:
    """DAG ``dag`` could not be scheduled (``exc``): log it, record an import error on its file, stop its runs.

    ``next_*`` is cleared, so the DAG is not due again until its file is
    parsed again (the processor computes the next run afresh). Runs already
    created keep running. The import error is written once per message (the
    processor replaces a file's import errors when it parses the file).
    """
    reason = f"{type(exc).__name__}: {exc}"
    message = f"DAG {dag.dag_id!r} cannot be scheduled; no scheduled runs until its file is parsed again: {reason}"
    log.error("%s", message)
    apply_next_run(dag, None)
    known = session.scalars(
        select(ImportError_.id).where(ImportError_.fileloc == dag.fileloc, ImportError_.message == message)
    ).first()
    if known is None:
        lineno = exc.lineno if isinstance(exc, DagDefinitionError) else None
        session.add(
            ImportError_(
                fileloc=dag.fileloc,
                lineno=lineno,
                message=message,
                stacktrace="".join(traceback.format_exception(exc)),
                timestamp=now,
            )
        )


def _check_conf(conf: Any) -> dict[str, Any]:
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise DagRunConfError(f"conf must be a JSON object (a dict), got {type(conf).__name__}")
    try:
        return dict(json.loads(json.dumps(dict(conf))))
    except (TypeError, ValueError) as exc:
        raise DagRunConfError(f"conf must be JSON-serializable: {exc}") from None


def conf_size(conf: Mapping[str, Any]) -> int:
    """Bytes of ``conf`` as compact UTF-8 JSON (no spaces after separators), the measure of ``api.max_conf_bytes``.

    Raises ``DagRunConfError`` if ``conf`` is not JSON-serializable.
    """
    try:
        return len(json.dumps(dict(conf), separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise DagRunConfError(f"conf must be JSON-serializable: {exc}") from None


def check_conf_size(conf: Mapping[str, Any] | None, max_bytes: int) -> None:
    """Raise ``DagRunConfTooLarge`` (413) when ``conf`` is longer than ``max_bytes`` (``api.max_conf_bytes``).

    The API, the UI (through the API) and ``headrace dags trigger`` call it before a run is created, so every
    DAG run's conf stays small enough for the viewers that list runs.
    """
    if conf is None or not isinstance(conf, Mapping):
        return  # not a JSON object: trigger_dag says so (400)
    size = conf_size(conf)
    if size > max_bytes:
        raise DagRunConfTooLarge(
            f"conf is {size:,} bytes of JSON, above the limit of {max_bytes:,} bytes (api.max_conf_bytes)",
            size=size,
            limit=max_bytes,
        )


def _active_dag(session: Session, dag_id: str) -> DagModel:
    dag = session.get(DagModel, dag_id)
    if dag is None or not dag.is_active:
        raise DagNotFound(
            f"DAG {dag_id!r} not found" + (" (its file no longer defines it)" if dag is not None else ""),
            dag_id=dag_id,
        )
    return dag


def check_run_id(run_id: str, pattern: str) -> None:
    """Raise ``InvalidRequest`` (400) unless ``pattern`` (``scheduler.allowed_run_id_pattern``) matches all of
    ``run_id`` (an invalid pattern also raises it, naming the setting)."""
    try:
        matched = re.fullmatch(pattern, run_id) is not None
    except re.error as exc:
        raise InvalidRequest(
            f"scheduler.allowed_run_id_pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None
    if not matched:
        raise InvalidRequest(
            f"run_id {run_id!r} does not match scheduler.allowed_run_id_pattern {pattern!r}", run_id=run_id
        )


def trigger_dag(
    session: Session,
    dag_id: str,
    *,
    conf: Mapping[str, Any] | None = None,
    logical_date: datetime | None = None,
    run_id: str | None = None,
    now: datetime,
    max_conf_bytes: int | None = None,
    allowed_run_id_pattern: str | None = None,
) -> DagRun:
    """Create a manual, queued run of ``dag_id`` and return it.

    ``logical_date`` defaults to ``now`` (its data interval is the instant
    ``[logical_date, logical_date]``); ``run_id`` defaults to
    ``manual__<logical date ISO>``. Paused DAGs accept the run; it starts when
    they are unpaused. Raises ``DagNotFound`` (unknown or inactive DAG),
    ``DagRunAlreadyExists`` (same run id, or a run at that logical date),
    ``DagRunConfError`` (conf not a JSON object) and ``ParamValidationError``
    (the DAG's params, overridden by ``conf``, fail their schemas: see
    :func:`~headrace.authoring.params.resolve_params`); nothing is written then.
    ``max_conf_bytes`` (``api.max_conf_bytes``, given by the API, UI and CLI): a longer ``conf`` raises
    ``DagRunConfTooLarge`` (413) before anything else is looked at.
    ``allowed_run_id_pattern`` (``scheduler.allowed_run_id_pattern``, given by the API, UI, CLI and the
    supervisor for a user's ``run_id``): a ``run_id`` it does not match in full raises ``InvalidRequest`` (400).
    """
    if max_conf_bytes is not None:
        check_conf_size(conf, max_conf_bytes)
    if run_id is not None and allowed_run_id_pattern is not None:
        check_run_id(run_id, allowed_run_id_pattern)
    dag = _active_dag(session, dag_id)
    conf_dict = _check_conf(conf)
    when = ensure_aware(logical_date) if logical_date is not None else now
    rid = run_id or run_id_for("manual", when)
    if queries.run_exists(session, dag_id, run_id=rid):
        raise DagRunAlreadyExists(f"DAG {dag_id!r} already has a run with run_id {rid!r}", dag_id=dag_id, run_id=rid)
    if queries.run_exists(session, dag_id, logical_date=when):
        raise DagRunAlreadyExists(
            f"DAG {dag_id!r} already has a run at logical date {when.isoformat()}", dag_id=dag_id, run_id=rid
        )
    version = _version(session, dag)
    sdag = SerializedDag.from_dict(version.serialized)
    resolve_params(sdag.params_dict, conf_dict)  # raises ParamValidationError: no run
    run = create_dag_run(
        session,
        sdag,
        version.id,
        run_id=rid,
        run_type="manual",
        logical_date=when,
        data_interval=sdag.timetable.infer_manual_data_interval(run_after=when),
        now=now,
        conf=conf_dict,
    )
    notify_scheduler(session)  # the schedulers look at once when the caller commits
    log.info("triggered DAG run %s of %s", rid, dag_id)
    return run


def create_backfill(
    session: Session,
    dag_id: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    conf: Mapping[str, Any] | None = None,
) -> list[DagRun]:
    """Create one queued ``backfill`` run per schedule interval whose logical date is in ``[start, end]``.

    Logical dates that already have a run are skipped. Runs start as
    ``max_active_runs`` allows, oldest first. Returns the new runs, oldest
    first. Raises ``DagNotFound``, ``ScheduleError`` (unscheduled DAG, end
    before start, more than ``MAX_BACKFILL_RUNS`` intervals), ``DagRunConfError`` and
    ``ParamValidationError`` (conf against the DAG's params, as for a trigger).
    """
    dag = _active_dag(session, dag_id)
    conf_dict = _check_conf(conf)
    start, end = ensure_aware(start), ensure_aware(end)
    if end < start:
        raise ScheduleError(f"backfill of {dag_id!r}: end {end.isoformat()} is before start {start.isoformat()}")
    version = _version(session, dag)
    sdag = SerializedDag.from_dict(version.serialized)
    if sdag.schedule is None:
        raise ScheduleError(f"DAG {dag_id!r} has no schedule, so it has no intervals to backfill; trigger it instead")
    resolve_params(sdag.params_dict, conf_dict)  # raises ParamValidationError: no run
    runs: list[DagRun] = []
    last: DataInterval | None = None
    for _ in range(MAX_BACKFILL_RUNS + 1):
        info = sdag.timetable.next_run_info(last, start_date=start, end_date=end, catchup=True, now=now)
        if info is None or info.logical_date > end or (last is not None and info.data_interval == last):
            if runs:
                notify_scheduler(session)
            return runs
        last = info.data_interval
        if queries.run_exists(session, dag_id, logical_date=info.logical_date):
            continue
        runs.append(
            create_dag_run(
                session,
                sdag,
                version.id,
                run_id=run_id_for("backfill", info.logical_date),
                run_type="backfill",
                logical_date=info.logical_date,
                data_interval=info.data_interval,
                now=now,
                conf=conf_dict,
            )
        )
    raise ScheduleError(f"backfill of {dag_id!r} from {start} to {end} needs more than {MAX_BACKFILL_RUNS} runs")


def start_queued_runs(session: Session, now: datetime, *, only_run: int | None = None) -> int:
    """Move queued runs to running, oldest logical date first, within each DAG's ``max_active_runs``.

    Runs of paused or inactive DAGs stay queued. Returns how many started. With several schedulers
    (PostgreSQL) the count and the starts are one critical section over all of them (:func:`headrace.db.locks.hold`).
    ``only_run`` (a ``dag_run.id``, ``dags test``) starts that run alone.
    """
    # Several schedulers (PostgreSQL): count running runs and start queued ones one at a time, until this commit.
    locks.hold(session, locks.Section.START_RUNS)
    runs = queries.queued_runs(session, only_run=only_run)
    if not runs:
        return 0
    dag_ids = {r.dag_id for r in runs}
    running = queries.active_run_counts(session, dag_ids, states=(DagRunState.RUNNING,))
    limits = {d.dag_id: d.max_active_runs for d in (session.get(DagModel, i) for i in dag_ids) if d is not None}
    started = 0
    for run in runs:
        if running.get(run.dag_id, 0) >= limits.get(run.dag_id, 0):
            continue
        if set_run_state(session, run.id, DagRunState.QUEUED, DagRunState.RUNNING, start_date=now):
            running[run.dag_id] = running.get(run.dag_id, 0) + 1
            started += 1
    return started


def finish_runs(
    session: Session,
    now: datetime,
    *,
    cache: DagCache,
    on_finished: Callable[[Any, DagRunState], None] | None = None,
    only_run: int | None = None,
) -> int:
    """End every running run whose task instances have all finished; return how many ended.

    ``failed`` if a leaf task (``SerializedDag.outcome_leaves``) ended ``failed`` or ``upstream_failed``, else
    ``success``; ``end_date = now``. A run's callbacks are handled afterwards
    by :mod:`headrace.scheduler.callbacks` (``callbacks_done`` stays False).
    ``on_finished(run_row, new_state)`` is called for each run ended (the
    scheduler emits ``on_run_finished`` once the transaction committed). ``only_run`` (a ``dag_run.id``,
    ``dags test``) looks at that run alone.
    """
    finished = 0
    for run in queries.finishable_runs(session, only_run=only_run):
        leaves = cache.get(session, run.dag_version_id).outcome_leaves
        states = queries.ti_states_of_run(session, run.id)
        failed = any(state in _LEAF_FAILURES for leaf in leaves for state in states.get(leaf, ()))
        new = DagRunState.FAILED if failed else DagRunState.SUCCESS
        if set_run_state(session, run.id, DagRunState.RUNNING, new, end_date=now):
            finished += 1
            if on_finished is not None:
                on_finished(run, new)
            log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, new.value)
    return finished


_UNSTARTED = frozenset(
    {
        TaskInstanceState.NONE,
        TaskInstanceState.SCHEDULED,
        TaskInstanceState.QUEUED,
        TaskInstanceState.UP_FOR_RETRY,
        TaskInstanceState.UP_FOR_RESCHEDULE,
        TaskInstanceState.DEFERRED,
    }
)
"""Task instance states a timed-out run skips (their task has not started, or waits to start again)."""


def enforce_dagrun_timeouts(
    session: Session, now: datetime, *, cache: DagCache, on_finished: Callable[[Any, DagRunState], None] | None = None
) -> int:
    """Fail every running run that started more than its DAG's ``dagrun_timeout`` ago; return how many.

    The timeout is that of the DAG version the run was created with. The run
    moves ``running → failed`` (``end_date = now``); its DAG-level failure
    callback and alerts follow as for any failed run (``callbacks_done`` stays
    False). Its unfinished task instances, each by compare-and-set:

    * ``running`` → ``failed``, end reason ``dagrun_timeout``, and the try's
      ``task_try`` row is closed with the same reason. The try's supervisor
      sees at its next heartbeat that the task instance no longer runs this
      try and stops the process tree; its late outcome finds the row closed.
    * ``none`` / ``scheduled`` / ``queued`` / ``up_for_retry`` / ``up_for_reschedule`` / ``deferred`` → ``skipped``,
      end reason ``dagrun_timeout`` (a queued try's supervisor then loses its claim).

    Airflow 3 skips every unfinished task instance of a timed-out run, running
    ones included; here a stopped running one shows as failed, as the issue asks.
    ``on_finished(run_row, DagRunState.FAILED)`` is called for each run
    failed (the scheduler emits ``on_run_finished`` once committed).
    """
    rows = session.execute(
        select(DagRun.id, DagRun.dag_id, DagRun.run_id, DagRun.start_date, DagRun.dag_version_id).where(
            DagRun.state == DagRunState.RUNNING.value, DagRun.start_date.is_not(None)
        )
    ).all()
    failed = 0
    for run in rows:
        try:
            timeout = cache.get(session, run.dag_version_id).dagrun_timeout
        except SQLAlchemyError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unreadable stored version: nothing to enforce from it
            log.error(
                "DAG run %s of %s: cannot read its DAG version (%s); dagrun_timeout not checked",
                run.run_id,
                run.dag_id,
                exc,
            )
            continue
        if timeout is None or run.start_date + timedelta(seconds=timeout) > now:
            continue
        if not set_run_state(session, run.id, DagRunState.RUNNING, DagRunState.FAILED, end_date=now):
            continue
        error = f"DAG run {run.run_id} of {run.dag_id} ran longer than its dagrun_timeout of {timeout:g} s"
        ended = [
            _time_out_ti(session, ti_id, now, error)
            for ti_id in session.scalars(select(TaskInstance.id).where(TaskInstance.dag_run_id == run.id))
        ]
        failed += 1
        log.warning(
            "%s: failed; %d running task instances failed, %d skipped",
            error,
            ended.count(TaskInstanceState.FAILED),
            ended.count(TaskInstanceState.SKIPPED),
        )
        if on_finished is not None:
            on_finished(run, DagRunState.FAILED)
    return failed


def _time_out_ti(session: Session, ti_id: int, now: datetime, error: str) -> TaskInstanceState | None:
    """End one task instance of a timed-out run (see :func:`enforce_dagrun_timeouts`); return its new state.

    None if it had finished. A compare-and-set lost to another writer (a
    supervisor claiming a queued try) is retried from the state it found.
    """
    reason = EndReason.DAGRUN_TIMEOUT.value
    for _ in range(3):
        found = session.execute(
            select(TaskInstance.state, TaskInstance.try_number).where(TaskInstance.id == ti_id)
        ).first()
        if found is None:
            return None
        state = TaskInstanceState(found.state)
        if state is TaskInstanceState.RUNNING:
            if set_ti_state(
                session,
                ti_id,
                state,
                TaskInstanceState.FAILED,
                expected_try_number=found.try_number,
                end_date=now,
                end_reason=reason,
                next_retry_at=None,
            ):
                tt = queries.try_row(session, ti_id, found.try_number)
                if tt is not None:
                    end_try(
                        session,
                        tt.id,
                        state=TaskInstanceState.FAILED.value,
                        end_date=now,
                        end_reason=reason,
                        error=error,
                    )
                return TaskInstanceState.FAILED
        elif state in _UNSTARTED:
            if set_ti_state(
                session, ti_id, state, TaskInstanceState.SKIPPED, end_date=now, end_reason=reason, next_retry_at=None
            ):
                return TaskInstanceState.SKIPPED
        else:
            return None
    log.error("task instance %d: state kept changing; left as it is after its run timed out", ti_id)
    return None


__all__ = [
    "MAX_BACKFILL_RUNS",
    "check_conf_size",
    "conf_size",
    "create_backfill",
    "create_dag_run",
    "create_runs",
    "enforce_dagrun_timeouts",
    "finish_runs",
    "run_id_for",
    "schedule_failed",
    "start_queued_runs",
    "trigger_dag",
]
