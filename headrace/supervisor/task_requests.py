"""The supervisor's answers to task-process requests: XCom reads and writes, skipping tasks,
variables and connections (read and decrypted here; the task process never sees the DB or the key),
an inlet asset's events, triggering other DAGs (:mod:`.dagrun_requests`) and reading another DAG's
runs for an ExternalTaskSensor (:mod:`.external_requests`).

Each request is served in its own short transaction, so a task that pulls
many XComs never holds a database lock while its code runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from headrace import secrets_store
from headrace.crypto import Encryptor
from headrace.db.assets import asset_events_of
from headrace.db.engine import Database
from headrace.db.models import DagRun, DagVersionTask, TaskMap, TaskReschedule, XCom
from headrace.db.models import TaskInstance as TaskInstanceRow
from headrace.db.outage import retry_through_outage
from headrace.db.skip_marks import record_skip_mark
from headrace.db.transitions import set_ti_state
from headrace.states import EndReason, TaskInstanceState
from headrace.storage.xcoms import XComObjects, is_reference
from headrace.supervisor.dagrun_requests import get_dag_run_state, trigger_dag_run
from headrace.supervisor.external_requests import get_external_task_states
from headrace.supervisor.mapped_items import get_mapped_items
from headrace.supervisor.protocol import (
    Ack,
    AssetEventsValue,
    ConnectionValue,
    DagRunStateValue,
    DagRunTriggered,
    Error,
    ExternalTaskStates,
    GetAssetEvents,
    GetConnection,
    GetDagRunState,
    GetExternalTaskStates,
    GetMappedItems,
    GetTaskRescheduleStartDate,
    GetVariable,
    GetXCom,
    MappedItems,
    SetXCom,
    SkipTasks,
    TaskRescheduleStartDate,
    TriggerDagRun,
    VariableValue,
    XComValue,
    dumps_value_list,
)
from headrace.supervisor.store import TryTarget

log = logging.getLogger("headrace.supervisor")


def _same(text: str) -> str:
    return text


def get_xcom(db: Database, target: TryTarget, message: GetXCom, xcoms: XComObjects | None = None) -> XComValue:
    """Answer ``GetXCom`` (see its docstring for the shape of the value); values in the object store are read
    from it (``xcoms``: the deployment's, None: none are)."""
    resolve = xcoms.resolve if xcoms is not None else _same
    if message.dag_id is None or message.dag_id == target.dag_id:
        where = [XCom.dag_run_id == target.dag_run_pk]
    else:
        where = [XCom.dag_id == message.dag_id, XCom.run_id == target.run_id]
    where.append(XCom.key == message.key)
    if message.map_indexes is not None:
        where.append(XCom.map_index == message.map_indexes)
    with db.session() as session:
        if message.task_ids is None:
            text = session.scalars(
                select(XCom.value).where(*where).order_by(XCom.created_at.desc(), XCom.id.desc()).limit(1)
            ).first()
            return XComValue(value_json=None if text is None else resolve(text))
        ids = [message.task_ids] if isinstance(message.task_ids, str) else message.task_ids
        query = select(XCom.task_id, XCom.map_index, XCom.value).where(*where, XCom.task_id.in_(ids))
        found: dict[str, dict[int, str]] = {}
        for task_id, map_index, value in session.execute(query):
            found.setdefault(task_id, {})[map_index] = resolve(value)
    one = message.map_indexes is not None
    rows = {task_id: _value_of(by_index, one) for task_id, by_index in found.items()}
    if isinstance(message.task_ids, str):
        text, indexes = rows.get(message.task_ids, (None, None))
        return XComValue(value_json=text, map_indexes=[indexes])
    values = [rows.get(t, (None, None)) for t in ids]
    return XComValue(value_json=dumps_value_list([v for v, _ in values]), map_indexes=[i for _, i in values])


def _value_of(by_index: dict[int, str], one_index: bool) -> tuple[str, list[int] | None]:
    """One task's value: the unmapped one (or the one asked for), or the list of a mapped task's values by
    map index (Airflow's lazy sequence), with those map indexes."""
    mapped = sorted(i for i in by_index if i >= 0)
    if one_index or not mapped:
        return next(iter(by_index.values())), None
    return dumps_value_list([by_index[i] for i in mapped]), mapped


def set_xcom(
    db: Database, target: TryTarget, message: SetXCom, max_bytes: int, xcoms: XComObjects | None = None
) -> Ack | Error:
    """Answer ``SetXCom``: replace this TI's XCom ``key``; refuse a value over ``max_bytes``.

    With ``map_length`` the value's length (and keys) goes into ``task_map`` in the same transaction. With
    ``xcoms`` a value of ``core.xcom_objectstorage_threshold`` bytes or more is written to the object store
    first and the row keeps a reference; the object of the value replaced is deleted once the new row is
    committed, and the new object is deleted if the row cannot be (the error is raised on).
    """
    size = len(message.value_json.encode("utf-8"))
    if size > max_bytes:
        return Error(
            message=f"XCom value of task {target.task_id} (key {message.key}) is {size} bytes, "
            f"over the limit of {max_bytes} bytes (xcom max size)"
        )
    value = message.value_json
    if xcoms is not None:
        try:
            value = xcoms.offload(value, dag_id=target.dag_id, run_id=target.run_id, task_id=target.task_id)
        except Exception as exc:  # noqa: BLE001 - the push fails with the reason, the task decides
            return Error(
                message=f"XCom value of task {target.task_id} (key {message.key}) could not be written to "
                f"core.xcom_objectstorage_path: {type(exc).__name__}: {exc}"
            )
    try:
        replaced = _write_xcom(db, target, message, value, find_replaced=xcoms is not None)
    except BaseException:
        if xcoms is not None and value != message.value_json:
            xcoms.purge([value])  # no row refers to it: no object left behind
        raise
    if replaced and xcoms is not None:
        xcoms.purge(replaced)
    return Ack()


def _write_xcom(db: Database, target: TryTarget, message: SetXCom, value: str, *, find_replaced: bool) -> list[str]:
    """Replace the ``xcom`` row (and ``task_map`` with ``map_length``) in one transaction; return the stored
    references of the rows replaced (with ``find_replaced``)."""
    of_key = (
        XCom.dag_run_id == target.dag_run_pk,
        XCom.task_id == target.task_id,
        XCom.map_index == target.map_index,
        XCom.key == message.key,
    )
    replaced: list[str] = []
    with db.session() as session:
        if find_replaced:
            replaced = [text for text in session.scalars(select(XCom.value).where(*of_key)) if is_reference(text)]
        session.execute(delete(XCom).where(*of_key))
        session.add(
            XCom(
                dag_run_id=target.dag_run_pk,
                dag_id=target.dag_id,
                run_id=target.run_id,
                task_id=target.task_id,
                map_index=target.map_index,
                key=message.key,
                value=value,
                created_at=datetime.now(UTC),
            )
        )
        if message.map_length is not None:
            session.execute(
                delete(TaskMap).where(
                    TaskMap.dag_run_id == target.dag_run_pk,
                    TaskMap.task_id == target.task_id,
                    TaskMap.map_index == target.map_index,
                )
            )
            session.add(
                TaskMap(
                    dag_run_id=target.dag_run_pk,
                    task_id=target.task_id,
                    map_index=target.map_index,
                    dag_id=target.dag_id,
                    run_id=target.run_id,
                    length=message.map_length,
                    keys=message.map_keys,
                )
            )
    return replaced


def skip_tasks(db: Database, target: TryTarget, message: SkipTasks) -> Ack:
    """Answer ``SkipTasks``: move those TIs of this run still in ``none``/``scheduled`` to ``skipped``.

    TIs already queued or further on are left alone (they run or ran); the
    requesting task itself is never skipped this way. A TI in ``none`` whose task sets
    ``wait_for_past_depends_before_skipping`` and ``depends_on_past`` is left too, as Airflow does: this task
    records a skip mark instead (:mod:`headrace.db.skip_marks`) and the scheduler skips it once its past
    depends are met.
    """
    ids = [t for t in message.task_ids if t != target.task_id]
    if not ids:
        return Ack()
    now = datetime.now(UTC)
    with db.session() as session:
        tasks = _run_tasks(session, target.dag_run_pk, [*ids, target.task_id])
        where = [
            TaskInstanceRow.dag_run_id == target.dag_run_pk,
            TaskInstanceRow.task_id.in_(ids),
            TaskInstanceRow.state.in_([TaskInstanceState.NONE.value, TaskInstanceState.SCHEDULED.value]),
        ]
        group = tasks.get(target.task_id, {}).get("mapped_group")
        same_group = {t for t in ids if group is not None and tasks.get(t, {}).get("mapped_group") == group}
        if target.map_index >= 0 and same_group:  # a branch at one index skips that index of the group's tasks
            where.append(or_(TaskInstanceRow.task_id.not_in(same_group), TaskInstanceRow.map_index == target.map_index))
        waiting = {
            t
            for t in ids
            if tasks.get(t, {}).get("wait_for_past_depends_before_skipping") and tasks[t].get("depends_on_past")
        }
        rows = session.execute(
            select(TaskInstanceRow.id, TaskInstanceRow.task_id, TaskInstanceRow.state).where(*where)
        ).all()
        for ti_id, task_id, state in list(rows):
            if task_id in waiting and state == TaskInstanceState.NONE.value:
                continue
            set_ti_state(
                session,
                ti_id,
                TaskInstanceState(state),
                TaskInstanceState.SKIPPED,
                start_date=now,
                end_date=now,
                end_reason=EndReason.SKIPPED.value,
            )
        if waiting:
            record_skip_mark(
                session,
                dag_run_pk=target.dag_run_pk,
                dag_id=target.dag_id,
                run_id=target.run_id,
                task_id=target.task_id,
                map_index=target.map_index,
                skipped=waiting,
                now=now,
            )
    return Ack()


def _run_tasks(session: Session, dag_run_pk: int, task_ids: Iterable[str]) -> dict[str, Any]:
    """The serialized entries (task id → dict) of ``task_ids`` in the DAG version of run ``dag_run_pk`` (those
    missing from that version, or all if the run is gone, are left out)."""
    rows = session.execute(
        select(DagVersionTask.task_id, DagVersionTask.serialized)
        .join(DagRun, DagRun.dag_version_id == DagVersionTask.dag_version_id)
        .where(DagRun.id == dag_run_pk, DagVersionTask.task_id.in_(sorted(set(task_ids))))
    )
    return {task_id: entry for task_id, entry in rows}


def get_variable(db: Database, encryptor: Encryptor, message: GetVariable) -> VariableValue:
    """Answer ``GetVariable``: the decrypted value, or None when there is no such variable."""
    with db.read_session() as session:
        return VariableValue(value=secrets_store.get_variable(session, encryptor, message.key))


def get_connection(db: Database, encryptor: Encryptor, message: GetConnection) -> ConnectionValue:
    """Answer ``GetConnection``: the connection's fields (password decrypted), or None."""
    with db.read_session() as session:
        conn = secrets_store.get_connection(session, encryptor, message.conn_id)
    return ConnectionValue(connection=None if conn is None else conn.to_dict())


def get_reschedule_start_date(
    db: Database, target: TryTarget, message: GetTaskRescheduleStartDate
) -> TaskRescheduleStartDate:
    """The earliest ``start_date`` of the task instance's ``task_reschedule`` rows with ``try_number >=`` the
    one asked (None: no poke was rescheduled since that try)."""
    with db.read_session() as session:
        start = session.scalar(
            select(func.min(TaskReschedule.start_date)).where(
                TaskReschedule.task_instance_id == target.ti_id, TaskReschedule.try_number >= message.try_number
            )
        )
    return TaskRescheduleStartDate(start_date=start)


Answer = (
    XComValue
    | MappedItems
    | VariableValue
    | ConnectionValue
    | DagRunTriggered
    | DagRunStateValue
    | TaskRescheduleStartDate
    | ExternalTaskStates
    | AssetEventsValue
    | Ack
    | Error
)
"""What :func:`handle` answers."""


def handle(
    db: Database,
    target: TryTarget,
    message: GetXCom
    | GetMappedItems
    | SetXCom
    | SkipTasks
    | GetVariable
    | GetConnection
    | TriggerDagRun
    | GetDagRunState
    | GetTaskRescheduleStartDate
    | GetExternalTaskStates
    | GetAssetEvents,
    xcom_max_size: int,
    encryptor: Callable[[], Encryptor],
    *,
    outage_tolerance: float = 0.0,
    run_id_pattern: str | None = None,
    xcoms: XComObjects | None = None,
) -> Answer:
    """Serve one request; a database (or decryption) error becomes an ``Error`` answer.

    ``encryptor`` is called only for variables and connections (building it
    may read or create the key file). ``run_id_pattern``: ``scheduler.allowed_run_id_pattern`` for a
    ``TriggerDagRun``'s run id. While the database is unreachable the
    request is tried again with backoff for up to ``outage_tolerance``
    seconds (the task waits for its answer); each request is its own
    transaction and safe to repeat. ``xcoms``: the object store of large XCom values (None: off).
    """

    def serve() -> Answer:
        if isinstance(message, GetAssetEvents):  # inlet_events
            with db.read_session() as session:
                return AssetEventsValue(events=asset_events_of(session, message.name, message.uri))
        if isinstance(message, GetXCom):
            return get_xcom(db, target, message, xcoms)
        if isinstance(message, GetMappedItems):
            return get_mapped_items(db, target, message, xcoms)
        if isinstance(message, SetXCom):
            return set_xcom(db, target, message, xcom_max_size, xcoms)
        if isinstance(message, GetVariable):
            return get_variable(db, encryptor(), message)
        if isinstance(message, GetConnection):
            return get_connection(db, encryptor(), message)
        if isinstance(message, TriggerDagRun):
            return trigger_dag_run(db, message, run_id_pattern=run_id_pattern)
        if isinstance(message, GetDagRunState):
            return get_dag_run_state(db, message)
        if isinstance(message, GetTaskRescheduleStartDate):
            return get_reschedule_start_date(db, target, message)
        if isinstance(message, GetExternalTaskStates):
            return get_external_task_states(db, message)
        return skip_tasks(db, target, message)

    try:
        return retry_through_outage(serve, tolerance=outage_tolerance, what=f"serving {message.type}", log=log)
    except Exception as exc:  # noqa: BLE001 - reported to the task, which fails with it
        return Error(message=f"supervisor could not serve {message.type}: {type(exc).__name__}: {exc}")
