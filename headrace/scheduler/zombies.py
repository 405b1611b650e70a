"""Zombie reports: what the scheduler says about a try it ended as a zombie, once that is committed.

Housekeeping (:func:`~headrace.scheduler.housekeeping.find_zombies`,
:func:`~headrace.scheduler.housekeeping.adopt_or_fail_tries`) and the
executor sync (:func:`~headrace.scheduler.housekeeping.end_exited_try`) end
a try whose supervisor is gone inside a transaction, and call
:meth:`ZombieReports.found` for it. Once that transaction has committed,
:meth:`ZombieReports.flush` emits ``on_zombie`` (and ``on_try_finished``)
to the listeners and starts the task's retry/failure callbacks, which the
supervisor would have run. A transaction rolled back (a database outage)
drops what it found (:meth:`ZombieReports.drop`): the check ends those tries
again once the database is back.
"""

from __future__ import annotations

from datetime import datetime

from headrace.authoring.context import RunInfo as ContextRunInfo
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, TaskTry
from headrace.observability.listener import Listeners, TryInfo
from headrace.scheduler.callbacks import CallbackRequest, CallbackRunner
from headrace.scheduler.dagcache import DagCache
from headrace.states import TaskInstanceState


class ZombieReports:
    """Tries ended as zombies whose events and callbacks wait for their transaction to commit."""

    def __init__(self, db: Database, cache: DagCache, listeners: Listeners, callbacks: CallbackRunner) -> None:
        self.db, self.cache, self.listeners, self.callbacks = db, cache, listeners, callbacks
        self._pending: list[tuple[TryInfo, int, str | None, bool]] = []
        """``(try, dag_run.id, log path, read by sync_executor)`` of each try found, in order."""

    def drop(self) -> None:
        """Forget the tries found: their transaction was rolled back."""
        self._pending = []

    def found(
        self,
        ti: TaskInstance,
        tt: TaskTry | None,
        new: TaskInstanceState,
        why: str,
        now: datetime,
        *,
        in_sync: bool = False,
    ) -> None:
        """A try was ended as a zombie (its transaction not yet committed): note it for :meth:`flush`."""
        info = TryInfo(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            state=new.value,
            end_reason="zombie",
            queued_at=ti.queued_at,
            start_date=tt.start_date if tt is not None else None,
            end_date=now,
            peak_rss_bytes=tt.peak_rss_bytes if tt is not None else None,
            cpu_seconds=tt.cpu_seconds if tt is not None else None,
            error=why,
            map_index=ti.map_index,
        )
        self._pending.append((info, ti.dag_run_id, tt.log_path if tt is not None else None, in_sync and tt is not None))

    def flush(self) -> None:
        """After the zombies' transaction committed: emit ``on_zombie`` (and ``on_try_finished``, unless
        sync_executor reads the ended ``task_try`` row itself), and start the task's retry/failure
        callbacks — its supervisor, which would have run them, is gone."""
        zombies, self._pending = self._pending, []
        requests: list[CallbackRequest] = []
        for info, run_pk, log_path, read_by_sync in zombies:
            self.listeners.emit("on_zombie", info, info.error or "")
            if not read_by_sync:
                self.listeners.emit("on_try_finished", info)
            with self.db.read_session() as session:
                run = session.get(DagRun, run_pk)
                task = self.cache.get(session, run.dag_version_id).tasks.get(info.task_id) if run else None
                wanted = task is not None and (
                    task.has_on_retry_callback if info.state == "up_for_retry" else task.has_on_failure_callback
                )
                if run is not None and wanted:
                    requests.append(
                        CallbackRequest(
                            self.cache.get(session, run.dag_version_id).fileloc,
                            info.dag_id,
                            ContextRunInfo.from_run(run),
                            info.state,
                            task_id=info.task_id,
                            try_number=info.try_number,
                            error=info.error or "",
                            log_path=log_path,
                            map_index=info.map_index,
                        )
                    )
        self.callbacks.start(requests)

    def found_in_sync(
        self, ti: TaskInstance, tt: TaskTry | None, new: TaskInstanceState, why: str, now: datetime
    ) -> None:
        self.found(ti, tt, new, why, now, in_sync=True)


__all__ = ["ZombieReports"]
