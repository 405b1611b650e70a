"""The DAG processor: parse changed DAG files in child processes and store what they define.

``DagProcessor(settings, db).refresh(now)`` does one pass:

1. list ``*.py`` files under ``core.dags_folder`` (recursively) and the extra
   folders given (the standalone command adds the bundled example DAGs);
   files whose text does not contain ``headrace`` are skipped, as Airflow's
   safe mode skips files without "airflow" and "dag";
2. parse only files whose ``(mtime, size)`` differ from their ``dag_file`` row;
3. each parse runs in a forked child with a time limit of
   ``core.dagbag_import_timeout`` seconds (several children at once, up to
   the CPU count). The child imports the file, serializes its DAGs and writes
   JSON to a pipe, then leaves with ``os._exit`` — it never touches the
   parent's database connections. A child that overruns is killed (SIGKILL)
   and the file gets the import error ``timed out after 30.0 s importing <file>``;
4. store the result in one transaction per file: ``dag`` rows (upsert; new
   DAGs are **not paused** — unlike Airflow's default — and the paused flag
   survives re-parsing), a ``dag_version`` row when the serialized hash is new,
   the ``dag_file`` row (mtime, size, parse seconds, dag ids) and the file's
   ``import_error`` rows (replaced on every parse);
5. DAGs gone from a parsed file, and all DAGs of deleted files, become
   ``is_active = False``. A file that fails to import keeps its DAGs as they
   were (Airflow's behaviour): a typo must not make a DAG vanish.

For DAGs that are new or whose schedule changed, ``next_logical_date``,
``next_data_interval_*`` and ``next_run_after`` are computed from the
timetable and the latest scheduled run.

User code never crashes the processor: every failure becomes an
``import_error`` row with file, line and a one-line message.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select as sql_select
from sqlalchemy.orm import Session

from headrace.authoring.schedules import DataInterval
from headrace.config import Settings
from headrace.dagfiles.loader import load_dags
from headrace.dagfiles.serialization import SerializedDag, dag_hash, serialize_dag
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagFile, DagModel, DagVersion, ImportError_

log = logging.getLogger(__name__)

MARKER = b"headrace"
"""Files without this text are not DAG files (Airflow's "safe mode")."""


@dataclass(frozen=True)
class ProcessorStats:
    """What one :meth:`DagProcessor.refresh` did."""

    files_seen: int
    """DAG files listed (after the ``headrace`` text filter)."""
    files_parsed: int
    """Files parsed because they were new or changed."""
    dags: int
    """DAGs stored from the parsed files."""
    errors: int
    """Parsed files that ended in an import error."""
    seconds: float
    """Wall time of the whole refresh."""
    parsed: tuple[tuple[str, float, bool], ...] = ()
    """``(fileloc, parse seconds, ok)`` of each file parsed (``ok`` False: import error)."""


@dataclass(frozen=True)
class ParseError:
    """Why a file did not import: one-line ``message``, the ``lineno`` in that file (if known)."""

    message: str
    lineno: int | None
    stacktrace: str | None = None


@dataclass(frozen=True)
class ParseResult:
    """The outcome of importing one DAG file in a child process."""

    fileloc: str
    dags: list[dict[str, Any]] = field(default_factory=list)
    """``serialize_dag`` output of each DAG the file defines."""
    error: ParseError | None = None
    seconds: float = 0.0
    """Wall time of the parse, from fork to result."""


# --- the child ----------------------------------------------------------------


def _error_from_exception(exc: BaseException, fileloc: str) -> ParseError:
    """One-line message and the line in ``fileloc`` where ``exc`` arose."""
    lineno: int | None = None
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        lineno = exc.lineno
    elif getattr(exc, "fileloc", None) == fileloc and getattr(exc, "lineno", None):
        lineno = int(getattr(exc, "lineno"))
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if os.path.realpath(frame.filename) == fileloc:
                lineno = frame.lineno
    text = str(exc).strip().splitlines()
    message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    stack = "".join(traceback.format_exception(exc))
    return ParseError(message=message, lineno=lineno, stacktrace=stack)


def _child_main(fileloc: str, write_fd: int) -> None:
    """Import ``fileloc``, write ``{"dags": [...]}`` or ``{"error": {...}}`` as JSON, exit. Never returns."""
    code = 0
    try:
        try:
            payload: dict[str, Any] = {"dags": [serialize_dag(d) for d in load_dags(fileloc)]}
        except BaseException as exc:  # user code: anything at all, SystemExit included
            err = _error_from_exception(exc, fileloc)
            payload = {"error": {"message": err.message, "lineno": err.lineno, "stacktrace": err.stacktrace}}
        data = json.dumps(payload, default=str).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:  # noqa: BLE001 — nothing may escape a forked child
        code = 1
    finally:
        os._exit(code)


@dataclass
class _Child:
    fileloc: str
    pid: int
    fd: int
    started: float
    deadline: float
    chunks: list[bytes] = field(default_factory=list)


def _start_child(fileloc: str, timeout: float) -> _Child:
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(-1)  # the scheduler's self-pipe belongs to the scheduler
        except ValueError:
            pass
        os.close(read_fd)
        _child_main(fileloc, write_fd)
    os.close(write_fd)
    return _Child(fileloc, pid, read_fd, started, started + timeout)


def _finish_child(child: _Child, timeout: float, *, timed_out: bool) -> ParseResult:
    """Reap ``child`` (killing it first if it overran) and decode what it wrote."""
    if timed_out:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.close(child.fd)
    _, status = os.waitpid(child.pid, 0)
    seconds = time.monotonic() - child.started
    if timed_out:
        err = ParseError(f"timed out after {timeout:.1f} s importing {child.fileloc}", None)
        return ParseResult(child.fileloc, error=err, seconds=seconds)
    try:
        payload = json.loads(b"".join(child.chunks))
    except ValueError:
        how = f"signal {-os.waitstatus_to_exitcode(status)}" if os.WIFSIGNALED(status) else \
            f"exit code {os.waitstatus_to_exitcode(status)}"
        err = ParseError(f"the process importing {child.fileloc} died ({how}) without a result", None)
        return ParseResult(child.fileloc, error=err, seconds=seconds)
    if "error" in payload:
        e = payload["error"]
        return ParseResult(child.fileloc, error=ParseError(e["message"], e["lineno"], e["stacktrace"]),
                           seconds=seconds)
    return ParseResult(child.fileloc, dags=list(payload["dags"]), seconds=seconds)


def parse_files(filelocs: Sequence[str], *, timeout: float, concurrency: int) -> list[ParseResult]:
    """Parse each file in a forked child, at most ``concurrency`` at once, each within ``timeout`` s.

    Returns one ``ParseResult`` per file, in the order they finished.
    """
    todo = list(filelocs)
    running: dict[int, _Child] = {}
    results: list[ParseResult] = []
    while todo or running:
        while todo and len(running) < concurrency:
            child = _start_child(todo.pop(0), timeout)
            running[child.fd] = child
        wait = max(0.0, min(c.deadline for c in running.values()) - time.monotonic())
        readable, _, _ = select.select(list(running), [], [], wait)
        for fd in readable:
            data = os.read(fd, 1 << 16)
            if data:
                running[fd].chunks.append(data)
            else:
                results.append(_finish_child(running.pop(fd), timeout, timed_out=False))
        now = time.monotonic()
        for fd in [fd for fd, c in running.items() if now >= c.deadline]:
            results.append(_finish_child(running.pop(fd), timeout, timed_out=True))
    return results


# --- the processor ------------------------------------------------------------


def _schedule_key(sdag: SerializedDag) -> tuple[Any, ...]:
    """What decides the next scheduled run; a change of it recomputes ``next_*``."""
    return (sdag.timetable.serialize(), sdag.start_date, sdag.end_date, sdag.catchup)


def set_next_run(session: Session, dag: DagModel, sdag: SerializedDag, now: datetime) -> None:
    """Set ``dag.next_*`` from the timetable and the DAG's latest scheduled run (None when no run is due ever)."""
    last = queries.last_scheduled_run(session, dag.dag_id)
    interval = None
    if last is not None and last.data_interval_start is not None and last.data_interval_end is not None:
        interval = DataInterval(last.data_interval_start, last.data_interval_end)
    info = sdag.timetable.next_run_info(
        interval, start_date=sdag.start_date, end_date=sdag.end_date, catchup=sdag.catchup, now=now
    )
    if info is None:
        dag.next_logical_date = dag.next_data_interval_start = dag.next_data_interval_end = None
        dag.next_run_after = None
    else:
        dag.next_logical_date = info.logical_date
        dag.next_data_interval_start = info.data_interval.start
        dag.next_data_interval_end = info.data_interval.end
        dag.next_run_after = info.run_after


class DagProcessor:
    """Keeps the ``dag`` / ``dag_version`` / ``dag_file`` / ``import_error`` tables in step with the DAG files."""

    def __init__(self, settings: Settings, db: Database, *, extra_folders: Iterable[str | Path] = ()) -> None:
        self.settings = settings
        self.db = db
        self.folders = [Path(settings.dags_folder), *(Path(f) for f in extra_folders)]
        self.timeout = float(settings.get("core", "dagbag_import_timeout"))
        self.concurrency = max(1, min(8, os.cpu_count() or 1))
        self._not_dag_files: dict[str, tuple[float, int]] = {}
        """Files without the marker text, with the (mtime, size) they had when read."""

    def list_files(self) -> dict[str, tuple[float, int]]:
        """``{real path: (mtime, size)}`` of the DAG files in the folders (those containing "headrace")."""
        found: dict[str, tuple[float, int]] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*.py")):
                try:
                    st = path.stat()
                except OSError:
                    continue
                real = os.path.realpath(path)
                stamp = (st.st_mtime, st.st_size)
                if self._not_dag_files.get(real) == stamp:
                    continue
                try:
                    if MARKER not in path.read_bytes():
                        self._not_dag_files[real] = stamp
                        continue
                except OSError:
                    continue
                self._not_dag_files.pop(real, None)
                found[real] = stamp
        return found

    def refresh(self, now: datetime) -> ProcessorStats:
        """Parse new and changed files, store the results, deactivate DAGs of deleted files.

        ``now`` (UTC-aware) stamps the rows and drives the next-run computation.
        """
        started = time.monotonic()
        files = self.list_files()
        with self.db.session() as session:
            known = {f.fileloc: f for f in session.scalars(sql_select(DagFile))}
            changed = [p for p, stamp in files.items() if p not in known or
                       (known[p].mtime, known[p].size) != stamp]
            for fileloc in set(known) - set(files):
                self._forget_file(session, known[fileloc], now)
        results = parse_files(changed, timeout=self.timeout, concurrency=self.concurrency)
        dags = errors = 0
        for result in results:
            mtime, size = files[result.fileloc]
            with self.db.session() as session:
                dags += self.store_result(session, result, mtime, size, now)
            errors += result.error is not None
            if result.error is not None:
                log.warning("import error in %s: %s", result.fileloc, result.error.message)
        stats = ProcessorStats(len(files), len(results), dags, errors, time.monotonic() - started,
                               tuple((r.fileloc, r.seconds, r.error is None) for r in results))
        if results:
            log.info("parsed %d of %d DAG files in %.2f s: %d DAGs, %d errors", stats.files_parsed,
                     stats.files_seen, stats.seconds, stats.dags, stats.errors)
        return stats

    def _forget_file(self, session: Session, row: DagFile, now: datetime) -> None:
        """A file was deleted: its DAGs become inactive and its import errors go."""
        self._deactivate(session, row.fileloc, row.dag_ids)
        session.execute(delete(ImportError_).where(ImportError_.fileloc == row.fileloc))
        session.delete(row)
        log.info("DAG file %s is gone; DAGs %s are now inactive", row.fileloc, row.dag_ids)

    @staticmethod
    def _deactivate(session: Session, fileloc: str, dag_ids: Iterable[str]) -> None:
        for dag_id in dag_ids:
            dag = session.get(DagModel, dag_id)
            if dag is not None and dag.fileloc == fileloc:
                dag.is_active = False

    def store_result(self, session: Session, result: ParseResult, mtime: float, size: int, now: datetime) -> int:
        """Write one file's parse result (DAGs, versions, dag_file row, import errors); return the DAGs stored.

        ``mtime`` (s since epoch) and ``size`` (bytes) are the file's stat at listing time.
        """
        session.execute(delete(ImportError_).where(ImportError_.fileloc == result.fileloc))
        row = session.get(DagFile, result.fileloc)
        previous_ids = list(row.dag_ids) if row is not None else []
        if result.error is not None:
            session.add(ImportError_(fileloc=result.fileloc, lineno=result.error.lineno,
                                     message=result.error.message, stacktrace=result.error.stacktrace,
                                     timestamp=now))
            dag_ids = previous_ids
        else:
            dag_ids = [self._store_dag(session, data, result.fileloc, now) for data in result.dags]
            self._deactivate(session, result.fileloc, set(previous_ids) - set(dag_ids))
        if row is None:
            row = DagFile(fileloc=result.fileloc)
            session.add(row)
        row.mtime, row.size, row.dag_ids = mtime, size, dag_ids
        row.last_parsed_at, row.parse_seconds = now, result.seconds
        return len(result.dags)

    def _store_dag(self, session: Session, data: dict[str, Any], fileloc: str, now: datetime) -> str:
        """Upsert one DAG and its version; return its dag_id."""
        sdag = SerializedDag.from_dict(data)
        version_hash = dag_hash(data)
        dag = session.get(DagModel, sdag.dag_id)
        old_key = None
        if dag is not None:
            old = queries.current_version(session, dag)
            old_key = _schedule_key(SerializedDag.from_dict(old.serialized)) if old is not None else None
        version = session.scalars(sql_select(DagVersion).where(
            DagVersion.dag_id == sdag.dag_id, DagVersion.version_hash == version_hash)).first()
        if version is None:
            session.add(DagVersion(dag_id=sdag.dag_id, version_hash=version_hash, serialized=data, created_at=now))
        if dag is None:
            dag = DagModel(dag_id=sdag.dag_id, is_paused=False)
            session.add(dag)
        dag.fileloc = fileloc
        dag.is_active = True
        dag.description = sdag.description
        dag.tags = list(sdag.tags)
        dag.schedule = str(sdag.schedule) if sdag.schedule is not None else None
        dag.max_active_runs = sdag.max_active_runs or int(self.settings.get("core", "max_active_runs_per_dag"))
        dag.max_active_tasks = sdag.max_active_tasks or int(self.settings.get("core", "max_active_tasks_per_dag"))
        dag.version_hash = version_hash
        dag.last_parsed_at = now
        if old_key is None or old_key != _schedule_key(sdag):
            session.flush()
            set_next_run(session, dag, sdag, now)
        return sdag.dag_id


__all__ = ["DagProcessor", "ParseError", "ParseResult", "ProcessorStats", "parse_files", "set_next_run"]
