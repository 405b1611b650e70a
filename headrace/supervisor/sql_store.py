"""The supervisor's :class:`~.store.TryStore` on the metadata database: :class:`SqlTryStore`.

The one module (with the request handlers it calls: :mod:`.task_requests`,
:mod:`.recording`, :mod:`.mapped_items`, :mod:`.dagrun_requests`,
:mod:`.external_requests`) where a supervisor touches SQL. Each call is one
short transaction on the supervisor's one pooled connection
(``Database.from_settings(..., single_connection=True)``).

The claim (see :mod:`.claim` for the whole of it): ``queued → running`` for
exactly this ``try_number``; in the same transaction load the try's row, run
and task entry (``_LOAD``: one round trip), insert the ``task_try`` row (or
reopen it for a sensor's next poke or a deferred task resuming:
:func:`_reopen_try`) and clear the TI's XComs (a resumed deferral keeps them).
If an earlier attempt of ours committed and only its answer was lost (an
outage mid-COMMIT), the claim finds its own row and takes it again.

The hot path's statements are built once, with bind parameters, so their
cache keys are computed once and their compiled forms are cached in the
engine, which the fork server warms before forking (:func:`warm_up`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from headrace.authoring.context import PreviousRun, RunInfo
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.dagfiles.serialization import SerializedTask
from headrace.db.assets import triggering_events_of
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersionTask, TaskInstance, TaskMap, TaskTry, XCom
from headrace.db.outage import is_outage, retry_through_outage
from headrace.db.queries import previous_success_id
from headrace.db.transitions import set_ti_state
from headrace.states import TaskInstanceState
from headrace.storage.stores import Stores
from headrace.storage.xcoms import XComObjects, is_reference
from headrace.supervisor.pending import Outcome
from headrace.supervisor.protocol import GetMappedItems, GetXCom
from headrace.supervisor.recording import apply, record_rendered_fields
from headrace.supervisor.store import ClaimedTry, TryStart, TryTarget
from headrace.supervisor.task_requests import Answer, handle

log = logging.getLogger("headrace.supervisor")

TI = TaskInstanceState
T = TypeVar("T")

REQUEST_OUTAGE_SHARE = 0.5
"""A task's request (XCom, variable, …) waits through an outage at most this share of the heartbeat
timeout (and of ``database.outage_tolerance``): meanwhile the supervisor checks no limits."""

_PREVIOUS = aliased(DagRun, name="previous_success")
_LOAD = (
    select(
        TaskInstance.id,
        TaskInstance.dag_id,
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.max_tries,
        DagRun.id,
        DagRun.dag_id,
        DagRun.run_id,
        DagRun.run_type,
        DagRun.conf,
        DagRun.logical_date,
        DagRun.queued_at,
        DagRun.data_interval_start,
        DagRun.data_interval_end,
        # Only this task's entry of the serialized DAG, by primary key: not read out of the whole document.
        DagVersionTask.serialized,
        TaskInstance.map_index,
        # The previous successful run's dates (the context's prev_*_success), in the same round trip.
        _PREVIOUS.data_interval_start,
        _PREVIOUS.data_interval_end,
        _PREVIOUS.start_date,
        _PREVIOUS.end_date,
        # Set for a sensor's next poke in reschedule mode: it continues the try (see _reopen_try).
        TaskInstance.reschedule_date,
        # Set for a deferred task resuming: it continues the try in next_method (see _reopen_try).
        TaskInstance.next_method,
        TaskInstance.next_kwargs,
    )
    .join_from(TaskInstance, DagRun, TaskInstance.dag_run_id == DagRun.id)
    .outerjoin(
        DagVersionTask,
        (DagVersionTask.dag_version_id == DagRun.dag_version_id) & (DagVersionTask.task_id == TaskInstance.task_id),
    )
    .outerjoin(_PREVIOUS, _PREVIOUS.id == previous_success_id(DagRun))
    .where(TaskInstance.id == bindparam("ti_id"))
)
_INSERT_TRY = insert(TaskTry).values(
    task_instance_id=bindparam("ti_id"),
    dag_id=bindparam("dag_id"),
    run_id=bindparam("run_id"),
    task_id=bindparam("task_id"),
    try_number=bindparam("try_number"),
    state=bindparam("state"),
    hostname=bindparam("hostname"),
    supervisor_pid=bindparam("supervisor_pid"),
    supervisor_start_time=bindparam("supervisor_start_time"),
    pid=bindparam("pid"),
    process_start_time=bindparam("process_start_time"),
    start_date=bindparam("start_date"),
    heartbeat_at=bindparam("start_date"),
    log_path=bindparam("log_path"),
    containment=bindparam("containment"),
    map_index=bindparam("map_index"),
)
_OWN_CLAIM = (
    select(TaskTry.id)
    .join(TaskInstance, TaskInstance.id == TaskTry.task_instance_id)
    .where(
        TaskTry.task_instance_id == bindparam("ti_id"),
        TaskTry.try_number == bindparam("try_number"),
        TaskTry.hostname == bindparam("host"),
        TaskTry.supervisor_pid == bindparam("supervisor_pid"),
        TaskTry.end_date.is_(None),
        TaskInstance.state == bindparam("running"),
        TaskInstance.try_number == bindparam("try_number"),
    )
)
_RESTART_TRY = (
    update(TaskTry)
    .where(TaskTry.id == bindparam("row_id"))
    .values(
        pid=bindparam("pid"),
        process_start_time=bindparam("process_start_time"),
        heartbeat_at=bindparam("now"),
    )
)
_CLEAR_XCOMS = delete(XCom).where(
    XCom.dag_run_id == bindparam("dag_run_pk"),
    XCom.task_id == bindparam("task_id"),
    XCom.map_index == bindparam("map_index"),
)
_CLEARED_VALUES = select(XCom.value).where(
    XCom.dag_run_id == bindparam("dag_run_pk"),
    XCom.task_id == bindparam("task_id"),
    XCom.map_index == bindparam("map_index"),
)
_CLEAR_TASK_MAP = delete(TaskMap).where(
    TaskMap.dag_run_id == bindparam("dag_run_pk"),
    TaskMap.task_id == bindparam("task_id"),
    TaskMap.map_index == bindparam("map_index"),
)
_EXPANDED_TI_COUNT = select(func.count()).where(
    TaskInstance.dag_run_id == bindparam("dag_run_pk"), TaskInstance.task_id == bindparam("task_id")
)

# The heartbeat and the "is this try still the running one?" check in one statement: it touches the
# try row only while the task instance is running this try, so rowcount 0 means someone else ended it.
_HEARTBEAT = (
    update(TaskTry)
    .where(
        TaskTry.id == bindparam("row_id"),
        exists().where(
            TaskInstance.id == bindparam("ti_id"),
            TaskInstance.state == TaskInstanceState.RUNNING.value,
            TaskInstance.try_number == bindparam("running_try"),
        ),
    )
    .values(heartbeat_at=bindparam("now"))
)
_TI_STATE = select(TaskInstance.state, TaskInstance.try_number).where(TaskInstance.id == bindparam("ti_id"))


def heartbeat_statement(conn: Connection, try_row_id: int, ti_id: int, try_number: int) -> bool:
    """``task_try.heartbeat_at = now`` for row ``try_row_id`` if TI ``ti_id`` is running ``try_number``.

    Returns False when it is not (nothing was written): someone else ended the try.
    """
    result = conn.execute(
        _HEARTBEAT, {"row_id": try_row_id, "now": datetime.now(UTC), "ti_id": ti_id, "running_try": try_number}
    )
    return bool(result.rowcount)


def _claim_ti(conn: Connection, ti_id: int, try_number: int, now: datetime) -> bool:
    """``queued → running`` for exactly ``try_number`` (compare-and-set); True if this call won."""
    return set_ti_state(
        conn,
        ti_id,
        TI.QUEUED,
        TI.RUNNING,
        expected_try_number=try_number,
        start_date=now,
        end_date=None,
        end_reason=None,
        next_retry_at=None,
        updated_at=now,
    )


def _policy(entry: object) -> SerializedTask | None:
    try:
        return SerializedTask.from_dict(entry)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None and key[0] is not None
    return int(key[0])


_POKE_TRY = select(TaskTry.id).where(
    TaskTry.task_instance_id == bindparam("ti_id"), TaskTry.try_number == bindparam("try_number")
)
_REOPEN_TRY = (
    update(TaskTry)
    .where(TaskTry.id == bindparam("row_id"))
    .values(
        state=TI.RUNNING.value,
        hostname=bindparam("host"),
        supervisor_pid=bindparam("supervisor_pid"),
        supervisor_start_time=bindparam("supervisor_start_time"),
        pid=bindparam("pid"),
        process_start_time=bindparam("process_start_time"),
        heartbeat_at=bindparam("now"),
        end_date=None,
        end_reason=None,
        error=None,
        exit_code=None,
        signal=None,
    )
)


def _reopen_try(conn: Connection, ti_id: int, start: TryStart) -> int | None:
    """A sensor's next poke in reschedule mode: reopen its try's row for this poke's processes (host, pids,
    start times; ``running`` again, the last poke's end cleared; ``start_date`` stays the try's first poke).
    Return the row's id, or None if the try has no row yet (then the claim inserts one).

    The try's pokes are listed in ``task_reschedule``; the row always names the processes of the current one,
    so zombie checks and re-adoption see them as any try's.
    """
    row_id: int | None = conn.execute(
        _POKE_TRY, {"ti_id": ti_id, "try_number": start.request.try_number}
    ).scalar_one_or_none()
    if row_id is None:
        return None
    conn.execute(
        _REOPEN_TRY,
        {
            "row_id": row_id,
            "host": start.host,
            "supervisor_pid": start.supervisor_pid,
            "supervisor_start_time": start.supervisor_start_time,
            "pid": start.pid,
            "process_start_time": start.process_start_time,
            "now": start.now,
        },
    )
    return row_id


class _LazyEncryptor:
    """Builds the Encryptor on first use: only tries that read a variable or connection pay for the key."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._encryptor: Encryptor | None = None

    def __call__(self) -> Encryptor:
        if self._encryptor is None:
            self._encryptor = Encryptor.from_settings(self._settings)
        return self._encryptor


class SqlTryStore:
    """:class:`~.store.TryStore` on the metadata database ``db`` (one transaction per call)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._stores: Stores | None = None
        self._encryptor = _LazyEncryptor(settings)
        self._xcom_max_size = settings.get_int("core", "xcom_max_size")
        self._run_id_pattern = settings.get_str("scheduler", "allowed_run_id_pattern")
        self._outage_tolerance = settings.get_float("database", "outage_tolerance")
        self._request_tolerance = min(
            self._outage_tolerance,
            REQUEST_OUTAGE_SHARE * settings.get_float("scheduler", "task_instance_heartbeat_timeout"),
        )

    def stores(self) -> Stores:
        if self._stores is None:
            self._stores = Stores(self.settings, self.db)
        return self._stores

    def is_unavailable(self, exc: BaseException) -> bool:
        return is_outage(exc)

    def retry(self, fn: Callable[[], T], *, what: str, tolerance: float | None = None) -> T:
        return retry_through_outage(
            fn, tolerance=self._outage_tolerance if tolerance is None else tolerance, what=what, log=log
        )

    def claim(self, start: TryStart) -> ClaimedTry | None:
        request = start.request
        with self.db.engine.begin() as conn:
            own_row: int | None = None
            if not _claim_ti(conn, request.ti_id, request.try_number, start.now):
                # Lost — unless an earlier attempt of ours committed and only its answer was lost (an outage
                # mid-COMMIT): then the try is ours, its gate was shut, and it starts afresh on that row.
                own_row = conn.execute(
                    _OWN_CLAIM,
                    {
                        "ti_id": request.ti_id,
                        "try_number": request.try_number,
                        "host": start.host,
                        "supervisor_pid": start.supervisor_pid,
                        "running": TI.RUNNING.value,
                    },
                ).scalar_one_or_none()
                if own_row is None:
                    return None
                log.warning(
                    "try %d of %s.%s was already claimed by this supervisor (the answer to its "
                    "COMMIT was lost); starting it",
                    request.try_number,
                    request.dag_id,
                    request.task_id,
                )
            row = conn.execute(_LOAD, {"ti_id": request.ti_id}).one()
            (
                ti_pk,
                dag_id,
                run_id,
                task_id,
                max_tries,
                run_pk,
                run_dag_id,
                run_run_id,
                run_type,
                conf,
                logical_date,
                queued_at,
                interval_start,
                interval_end,
                task_entry,
                map_index,
                *previous,
                reschedule_date,
                next_method,
                next_kwargs,
            ) = row
            logical = logical_date or queued_at
            info = RunInfo(
                dag_id=run_dag_id,
                run_id=run_run_id,
                logical_date=logical,
                data_interval_start=interval_start or logical,
                data_interval_end=interval_end or logical,
                run_type=run_type,
                conf=dict(conf or {}),
                previous_success=PreviousRun(*previous) if any(previous) else None,
                triggering_asset_events=triggering_events_of(conn, run_pk) if run_type == "asset_triggered" else (),
            )
            expanded = (
                conn.execute(_EXPANDED_TI_COUNT, {"dag_run_pk": run_pk, "task_id": task_id}).scalar()
                if map_index >= 0
                else None
            )
            resumed = reschedule_date is not None or next_method is not None
            if own_row is None and resumed:
                own_row = _reopen_try(conn, ti_pk, start)
            if own_row is None:
                result = conn.execute(
                    _INSERT_TRY,
                    {
                        "ti_id": ti_pk,
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "task_id": task_id,
                        "try_number": request.try_number,
                        "state": TI.RUNNING.value,
                        "hostname": start.host,
                        "supervisor_pid": start.supervisor_pid,
                        "supervisor_start_time": start.supervisor_start_time,
                        "pid": start.pid,
                        "process_start_time": start.process_start_time,
                        "start_date": start.now,
                        "log_path": start.log_path,
                        "containment": start.containment,
                        "map_index": map_index,
                    },
                )
                try_row_id = _inserted_id(result)
            else:
                conn.execute(
                    _RESTART_TRY,
                    {
                        "row_id": own_row,
                        "pid": start.pid,
                        "process_start_time": start.process_start_time,
                        "now": start.now,
                    },
                )
                try_row_id = own_row
            cleared: list[str] = []
            if next_method is None:  # a resumed deferral keeps what the try pushed before it deferred (Airflow's)
                of_ti = {"dag_run_pk": run_pk, "task_id": task_id, "map_index": map_index}
                if self.stores().xcoms_url:  # their objects go after the commit
                    cleared = [t for t in conn.execute(_CLEARED_VALUES, of_ti).scalars() if is_reference(t)]
                conn.execute(_CLEAR_XCOMS, of_ti)
                conn.execute(_CLEAR_TASK_MAP, of_ti)
        return ClaimedTry(
            target=TryTarget(
                ti_id=ti_pk, dag_run_pk=run_pk, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index
            ),
            try_row_id=try_row_id,
            max_tries=max_tries,
            run=info,
            policy=_policy(task_entry) if task_id == request.task_id else None,
            expanded_ti_count=expanded,
            next_method=next_method,
            next_kwargs=next_kwargs,
            resumed=resumed,
            cleared_references=tuple(cleared),
        )

    def heartbeat(self, target: TryTarget, try_row_id: int, try_number: int) -> tuple[str, int] | None:
        with self.db.engine.begin() as conn:
            if heartbeat_statement(conn, try_row_id, target.ti_id, try_number):
                return None
            row = conn.execute(_TI_STATE, {"ti_id": target.ti_id}).one_or_none()
        if row is None:
            return ("deleted", try_number)
        state, running_try = str(row[0]), int(row[1])
        if state == TI.RUNNING.value and running_try == try_number:
            return None  # the try row itself is missing; nothing a user did
        return state, running_try

    def answer(self, target: TryTarget, message: Any) -> Answer:
        stores = self.stores()
        if stores.xcoms_url and isinstance(message, (GetXCom, GetMappedItems)):
            # Reading a value from the object store may first read the store's connection from the database:
            # do it now, not inside the request's transaction, where it would wait for a second connection
            # that a supervisor's pool of one never has.
            try:
                stores.xcoms(for_reading=True)
            except Exception:  # noqa: BLE001 - a bad setting or connection: the request reports it itself
                pass
        return handle(
            self.db,
            target,
            message,
            self._xcom_max_size,
            self._encryptor,
            outage_tolerance=self._request_tolerance,
            run_id_pattern=self._run_id_pattern,
            xcoms=XComObjects(stores) if stores.xcoms_url else None,
        )

    def record(self, outcome: Outcome) -> bool:
        with self.db.engine.begin() as conn:
            return apply(conn, outcome)


def warm_up(db: Database) -> None:
    """Run the hot path's statements once against no row, in a transaction rolled back.

    The fork server calls it before forking, so every supervisor inherits an
    engine whose compiled cache already holds them (see ``Database``).
    """
    now = datetime.now(UTC)

    class _Rollback(Exception):
        pass

    try:
        with db.engine.begin() as conn:
            _claim_ti(conn, -1, 1, now)
            conn.execute(_LOAD, {"ti_id": -1}).all()
            try:
                with conn.begin_nested():  # no such task instance: the foreign key refuses it, once compiled
                    conn.execute(
                        _INSERT_TRY,
                        {
                            "ti_id": -1,
                            "dag_id": "-",
                            "run_id": "-",
                            "task_id": "-",
                            "try_number": 1,
                            "state": TI.RUNNING.value,
                            "hostname": "-",
                            "supervisor_pid": 0,
                            "supervisor_start_time": 0.0,
                            "pid": 0,
                            "process_start_time": 0.0,
                            "start_date": now,
                            "log_path": "-",
                            "containment": None,
                            "map_index": -1,
                        },
                    )
            except DBAPIError:
                pass
            conn.execute(_CLEAR_XCOMS, {"dag_run_pk": -1, "task_id": "-", "map_index": -1})
            conn.execute(_CLEAR_TASK_MAP, {"dag_run_pk": -1, "task_id": "-", "map_index": -1})
            apply(
                conn,
                Outcome(
                    ti_id=-1,
                    try_number=1,
                    try_row_id=-1,
                    state="success",
                    try_state="success",
                    end_date=now,
                    end_reason="success",
                    exit_code=0,
                    peak_rss_bytes=0,
                    cpu_seconds=0.0,
                ),
            )
            heartbeat_statement(conn, -1, -1, 1)
            try:
                with conn.begin_nested():  # no such task instance: the insert is refused, once compiled
                    record_rendered_fields(conn, -1, 1, {}, now)
            except DBAPIError:
                pass
            raise _Rollback
    except _Rollback:
        pass


__all__ = ["REQUEST_OUTAGE_SHARE", "SqlTryStore", "heartbeat_statement", "warm_up"]
