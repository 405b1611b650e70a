"""The DAG processor: parse changed DAG files in child processes and store what they define.

A *pass* over the DAG files:

1. list ``*.py`` files under ``core.dags_folder`` (recursively) and the extra
   folders given (the standalone command adds the bundled example DAGs),
   minus those ``.airflowignore`` / ``.headraceignore`` exclude; files whose
   text does not mention ``dag`` and ``airflow`` or ``headrace`` are skipped,
   as Airflow's safe mode does (:mod:`~headrace.dagfiles.discovery`);
2. parse only files whose ``(mtime, size)`` differ from their ``dag_file`` row —
   except in a processor's first pass, which parses every file: what a file
   means can change without the file changing (a headrace upgrade, or settings
   such as ``scheduler.catchup_by_default`` and
   ``scheduler.create_cron_data_intervals``), and a restart applies it;
3. each parse runs in a forked child with a time limit of
   ``core.dagbag_import_timeout`` seconds (several children at once, up to
   the CPU count, at most 8; the other files wait for a free slot): see
   :mod:`~headrace.dagfiles.parsing`;
4. store the result in one transaction per file, as each child finishes:
   ``dag`` rows (upsert; new DAGs are **not paused** — unlike Airflow's
   default — and the paused flag survives re-parsing), a ``dag_version`` row
   when the serialized hash is new, the ``dag_file`` row (mtime, size, parse
   seconds, dag ids) and the file's ``import_error`` rows (replaced on every
   parse);
5. DAGs gone from a parsed file, and all DAGs of deleted files, become
   ``is_active = False``. A file that fails to import keeps its DAGs as they
   were (Airflow's behaviour): a typo must not make a DAG vanish.

A ``dag_id`` defined in two files stays bound to the first (see
:mod:`~headrace.dagfiles.ownership`): the other file gets the import error
``Ignoring DAG <dag_id> from <file> - also found in <first file>``, and takes
the DAG over, without being touched, once the first file stops defining it.

For DAGs that are new or whose schedule changed, ``next_logical_date``,
``next_data_interval_*`` and ``next_run_after`` are computed from the
timetable and the latest scheduled run.

Two ways to run a pass, one code path:

- non-blocking, for the scheduler loop (a file that hangs at import must not
  stop the loop): ``start(now)`` lists the files, deactivates the DAGs of
  deleted files and forks the first children; ``collect(now)`` never blocks —
  it reads what the children wrote, stores finished files, kills children
  past their deadline, starts waiting files, and returns the pass's
  :class:`ProcessorStats` once every file is done (None before). ``fds()``
  (pipes of running children) and ``next_deadline()`` (``time.monotonic()``
  of the earliest kill) tell the caller when to call ``collect`` again;
  ``busy`` says a pass is in progress; ``close()`` kills its children.
- blocking, for the CLI and tests: ``refresh(now)`` is ``start`` followed by
  ``collect`` until the pass ends, sleeping in ``select`` on ``fds()`` in
  between.

User code never crashes the processor: every failure becomes an
``import_error`` row with file, line and a one-line message. A DAG whose
schedule cannot be serialized, read back or evaluated
(:func:`~headrace.dagfiles.serialization.check_schedule` in the child, and the
same read and next-run computation when it is stored) is that DAG's import
error, at the DAG's line; the file's other DAGs are stored, and the failing
DAG, if it was known, stays as it was.

DAG warnings (:mod:`headrace.authoring.dag_warnings`: arguments the author
wrote that headrace ignores) are stored per DAG in ``dag_warning``, replaced
on every parse of its file and dropped when the DAG becomes inactive.
``catchup`` of DAGs that do not set it is ``scheduler.catchup_by_default``,
applied when the file is parsed (a changed setting reaches a DAG when its file
is parsed again).
"""

from __future__ import annotations

import logging
import os
import select
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select as sql_select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from headrace.authoring.timetables import set_schedule_defaults
from headrace.authoring.weight_rule import set_default_weight_rule
from headrace.config import Settings
from headrace.dagfiles.asset_refs import store_asset_references
from headrace.dagfiles.discovery import find_dag_files, might_contain_dag
from headrace.dagfiles.loader import prepare_dag_imports
from headrace.dagfiles.next_run import apply_next_run, next_run_for
from headrace.dagfiles.ownership import blocking_owner, duplicate_message, owner_of, reparse_claimants
from headrace.dagfiles.parsing import ParseBatch, ParseError, ParseResult, parse_files
from headrace.dagfiles.serialization import SerializedDag, UnreadableTimetable, dag_hash
from headrace.db import queries
from headrace.db.engine import Database
from headrace.db.models import DagFile, DagModel, DagVersion, DagWarning, ImportError_
from headrace.exceptions import ScheduleError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessorStats:
    """What one pass (:meth:`DagProcessor.refresh`, or ``start`` … ``collect``) did."""

    files_seen: int
    """DAG files listed (after the ``headrace`` text filter)."""
    files_parsed: int
    """Files parsed because they were new or changed."""
    dags: int
    """DAGs stored from the parsed files."""
    errors: int
    """Parsed files that ended in an import error."""
    seconds: float
    """Wall time of the whole pass, from listing to the last result stored."""
    parsed: tuple[tuple[str, float, bool], ...] = ()
    """``(fileloc, parse seconds, ok)`` of each file parsed (``ok`` False: import error)."""


# --- the processor ------------------------------------------------------------


def _schedule_key(sdag: SerializedDag) -> tuple[Any, ...]:
    """What decides the next scheduled run; a change of it recomputes ``next_*``."""
    return (sdag.timetable.serialize(), sdag.start_date, sdag.end_date, sdag.catchup)


@dataclass
class _Pass:
    """A pass in progress: what :meth:`DagProcessor.start` listed, and what has been stored so far."""

    started: float
    """``time.monotonic()`` at the start."""
    files: dict[str, tuple[float, int]]
    """``{fileloc: (mtime, size)}`` of every DAG file listed."""
    batch: ParseBatch
    results: list[ParseResult] = field(default_factory=list)
    """Results stored so far, in the order the children finished."""
    refused: set[int] = field(default_factory=set)
    """Indexes in ``results`` of files that imported but had a DAG refused (its ``dag_id`` is another file's)."""
    dags: int = 0
    """DAGs stored so far."""
    bound: dict[str, str] = field(default_factory=dict)
    """``{dag_id: fileloc}`` of DAGs that were free before this pass and bound during it (see ``ownership``)."""


class DagProcessor:
    """Keeps the ``dag`` / ``dag_version`` / ``dag_file`` / ``import_error`` tables in step with the DAG files."""

    def __init__(self, settings: Settings, db: Database, *, extra_folders: Iterable[str | Path] = ()) -> None:
        self.settings = settings
        self.db = db
        self.folders = [Path(settings.dags_folder), *(Path(f) for f in extra_folders)]
        self.timeout = settings.get_float("core", "dagbag_import_timeout")
        self.catchup_default = settings.get_bool("scheduler", "catchup_by_default")
        # What a cron string or a delta means in the DAG files this process (and its parse children) imports.
        set_schedule_defaults(
            create_cron_data_intervals=settings.get_bool("scheduler", "create_cron_data_intervals"),
            create_delta_data_intervals=settings.get_bool("scheduler", "create_delta_data_intervals"),
        )
        set_default_weight_rule(settings.get_str("core", "default_task_weight_rule"))
        prepare_dag_imports(settings)  # DAGs folder on sys.path, core.airflow_imports; the parse children inherit both
        self.concurrency = max(1, min(8, os.cpu_count() or 1))
        self._not_dag_files: dict[str, tuple[float, int]] = {}
        """Files without the marker text, with the (mtime, size) they had when read."""
        self._pass: _Pass | None = None
        """The pass in progress (see :meth:`start`)."""
        self._parsed_all = False
        """Whether a pass of this processor parsed every file (its first one does)."""
        self._refused_last: set[str] = set()
        """Files that the last :meth:`store_result` gave a duplicate ``dag_id`` import error."""
        self._reparse: list[str] = []
        """Files to parse again in the pass in progress: a DAG they define was given up by its file."""

    def list_files(self) -> dict[str, tuple[float, int]]:
        """``{real path: (mtime, size)}`` of the DAG files in the folders.

        A ``.py`` file is listed unless an ``.airflowignore`` / ``.headraceignore``
        pattern (``core.dag_ignore_file_syntax``) excludes it, and only if it
        mentions ``dag`` and ``airflow`` or ``headrace`` (see :mod:`~headrace.dagfiles.discovery`).
        """
        syntax = self.settings.get_str("core", "dag_ignore_file_syntax")
        found: dict[str, tuple[float, int]] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in find_dag_files(folder, syntax):
                try:
                    st = path.stat()
                except OSError:
                    continue
                real = os.path.realpath(path)
                stamp = (st.st_mtime, st.st_size)
                if self._not_dag_files.get(real) == stamp:
                    continue
                try:
                    if not might_contain_dag(path.read_bytes()):
                        self._not_dag_files[real] = stamp
                        continue
                except OSError:
                    continue
                self._not_dag_files.pop(real, None)
                found[real] = stamp
        return found

    @property
    def busy(self) -> bool:
        """A pass is in progress: :meth:`start` did it, :meth:`collect` has not returned its stats yet."""
        return self._pass is not None

    def start(self, now: datetime) -> int:
        """Begin a pass unless one is in progress; return the files it will parse (0 if one was in progress).

        Lists the files, deactivates the DAGs of deleted files and forks the
        first children (the other files wait for a free slot). ``now``
        (UTC-aware) stamps the rows. Blocks only on the listing and one
        transaction, never on a child.
        """
        if self._pass is not None:
            return 0
        started = time.monotonic()
        files = self.list_files()
        with self.db.session() as session:
            known = {f.fileloc: f for f in session.scalars(sql_select(DagFile))}
            for fileloc in sorted(set(known) - set(files)):
                self._forget_file(session, known[fileloc], now)  # may mark files defining its DAGs for parsing
            changed = [
                p
                for p, stamp in files.items()
                if not self._parsed_all or p not in known or (known[p].mtime, known[p].size) != stamp
            ]
        self._parsed_all = True
        self._reparse.clear()
        self._pass = _Pass(
            started,
            files,
            ParseBatch(
                changed, timeout=self.timeout, concurrency=self.concurrency, catchup_default=self.catchup_default
            ),
        )
        return len(changed)

    def collect(self, now: datetime) -> ProcessorStats | None:
        """Store the files whose child finished, without blocking; the pass's stats once it ended, else None.

        Reads the children's pipes, reaps the finished, kills those past their
        deadline (import error ``timed out after … s``), starts waiting files.
        Each result is stored in its own transaction, stamped ``now``
        (UTC-aware). None also when no pass is in progress.
        """
        run = self._pass
        if run is None:
            return None
        for result in run.batch.poll():
            mtime, size = run.files[result.fileloc]
            with self.db.session() as session:
                run.dags += self.store_result(session, result, mtime, size, now, bound_this_pass=run.bound)
            run.results.append(result)
            run.refused.update(i for i, r in enumerate(run.results) if r.fileloc in self._refused_last)
            run.batch.add([f for f in self._reparse if f in run.files])
            self._reparse.clear()
            if result.error is not None:
                log.warning("import error in %s: %s", result.fileloc, result.error.message)
            for err in result.dag_errors:
                log.warning("import error in %s, DAG %s: %s", result.fileloc, err.dag_id, err.message)
        if not run.batch.done:
            return None
        self._pass = None
        results = run.results
        stats = ProcessorStats(
            len(run.files),
            len(results),
            run.dags,
            sum(not r.ok or i in run.refused for i, r in enumerate(results)),
            time.monotonic() - run.started,
            tuple((r.fileloc, r.seconds, r.ok and i not in run.refused) for i, r in enumerate(results)),
        )
        if results:
            log.info(
                "parsed %d of %d DAG files in %.2f s: %d DAGs, %d errors",
                stats.files_parsed,
                stats.files_seen,
                stats.seconds,
                stats.dags,
                stats.errors,
            )
        return stats

    def fds(self) -> list[int]:
        """Pipes of the pass's running children; one turns readable when there is something to :meth:`collect`."""
        return self._pass.batch.fds() if self._pass is not None else []

    def next_deadline(self) -> float | None:
        """``time.monotonic()`` at which :meth:`collect` must kill the next overdue child (None: no child runs)."""
        return self._pass.batch.next_deadline() if self._pass is not None else None

    def close(self) -> None:
        """End the pass in progress, if any: kill and reap its children (results stored so far stay)."""
        if self._pass is not None:
            self._pass.batch.kill()
            self._pass = None

    def refresh(self, now: datetime) -> ProcessorStats:
        """Run a pass to its end, blocking: parse new and changed files, store them, deactivate deleted files.

        :meth:`start` then :meth:`collect` until it returns the stats (a pass
        already in progress is finished instead). ``now`` (UTC-aware) stamps
        the rows and drives the next-run computation.
        """
        self.start(now)
        while (stats := self.collect(now)) is None:
            deadline = self.next_deadline()
            wait = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
            select.select(self.fds(), [], [], wait)
        return stats

    def _forget_file(self, session: Session, row: DagFile, now: datetime) -> None:
        """A file was deleted: its DAGs become inactive and its import errors go; other files defining them are
        marked for parsing (one of them takes each over)."""
        self._reparse += reparse_claimants(session, self._deactivate(session, row.fileloc, row.dag_ids), row.fileloc)
        session.execute(delete(ImportError_).where(ImportError_.fileloc == row.fileloc))
        session.delete(row)
        log.info("DAG file %s is gone; DAGs %s are now inactive", row.fileloc, row.dag_ids)

    @staticmethod
    def _deactivate(session: Session, fileloc: str, dag_ids: Iterable[str]) -> list[str]:
        """Deactivate those of ``dag_ids`` bound to ``fileloc``; return them."""
        done: list[str] = []
        for dag_id in dag_ids:
            dag = session.get(DagModel, dag_id)
            if dag is not None and dag.fileloc == fileloc:
                dag.is_active = False
                session.execute(delete(DagWarning).where(DagWarning.dag_id == dag_id))
                done.append(dag_id)
        return done

    def store_result(
        self,
        session: Session,
        result: ParseResult,
        mtime: float,
        size: int,
        now: datetime,
        *,
        bound_this_pass: dict[str, str] | None = None,
    ) -> int:
        """Write one file's parse result (DAGs, versions, dag_file row, import errors); return the DAGs stored.

        ``mtime`` (s since epoch) and ``size`` (bytes) are the file's stat at listing time. A DAG whose
        ``dag_id`` another file owns is not stored: it is this file's import error (see
        :mod:`~headrace.dagfiles.ownership`). ``bound_this_pass`` (``{dag_id: fileloc}``, updated here) holds
        the DAGs first bound in the pass in progress, where the lower path wins.
        """
        bound = {} if bound_this_pass is None else bound_this_pass
        self._refused_last = set()
        session.execute(delete(ImportError_).where(ImportError_.fileloc == result.fileloc))
        row = session.get(DagFile, result.fileloc)
        previous_ids = list(row.dag_ids) if row is not None else []
        if result.error is not None:
            session.add(
                ImportError_(
                    fileloc=result.fileloc,
                    lineno=result.error.lineno,
                    message=result.error.message,
                    stacktrace=result.error.stacktrace,
                    timestamp=now,
                )
            )
            dag_ids = previous_ids
            stored = 0
        else:
            dag_ids = []
            dag_errors = list(result.dag_errors)
            refused: list[str] = []
            for data in result.dags:
                owner = blocking_owner(session, data.get("dag_id", ""), result.fileloc, bound)
                if owner is not None:
                    message = duplicate_message(data["dag_id"], result.fileloc, owner)
                    dag_errors.append(ParseError(message, data.get("lineno") or None, dag_id=data["dag_id"]))
                    refused.append(data["dag_id"])
                    continue
                try:
                    previous_owner = owner_of(session, data.get("dag_id", ""))
                    dag_ids.append(self._store_dag(session, data, result.fileloc, now))
                    if self._note_binding(session, dag_ids[-1], result.fileloc, previous_owner, bound, now):
                        self._refused_last.add(str(previous_owner))
                except SQLAlchemyError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the scheduler could not use this DAG: its import error, not a crash
                    dag_errors.append(
                        ParseError(
                            f"{type(exc).__name__}: {exc}",
                            data.get("lineno") or None,
                            traceback.format_exc(),
                            dag_id=data.get("dag_id"),
                        )
                    )
            stored = len(dag_ids)
            self._store_warnings(session, {d: result.warnings.get(d, []) for d in dag_ids}, now)
            for err in dag_errors:
                session.add(
                    ImportError_(
                        fileloc=result.fileloc,
                        lineno=err.lineno,
                        message=err.message,
                        stacktrace=err.stacktrace,
                        timestamp=now,
                    )
                )
                if err.dag_id in previous_ids and err.dag_id not in dag_ids:
                    dag_ids.append(err.dag_id)  # kept as it was, like the DAGs of a file that fails to import
            if refused:
                self._refused_last.add(result.fileloc)
            dag_ids += [d for d in refused if d not in dag_ids]  # still defined here: a candidate to take over
            gone = self._deactivate(session, result.fileloc, set(previous_ids) - set(dag_ids))
            self._reparse += reparse_claimants(session, gone, result.fileloc)
        if row is None:
            row = DagFile(fileloc=result.fileloc)
            session.add(row)
        row.mtime, row.size, row.dag_ids = mtime, size, dag_ids
        row.last_parsed_at, row.parse_seconds = now, result.seconds
        return stored

    @staticmethod
    def _note_binding(
        session: Session, dag_id: str, fileloc: str, previous: str | None, bound: dict[str, str], now: datetime
    ) -> bool:
        """``dag_id`` was stored from ``fileloc``, bound to ``previous`` (None: no file) before; True if
        ``previous`` lost it (it got the import error)."""
        if previous == fileloc:
            return False
        bound[dag_id] = fileloc
        if previous is not None:  # bound earlier in this pass to a file with a higher path: that file lost it
            session.add(
                ImportError_(
                    fileloc=previous,
                    lineno=None,
                    message=duplicate_message(dag_id, previous, fileloc),
                    stacktrace=None,
                    timestamp=now,
                )
            )
        return previous is not None

    @staticmethod
    def _store_warnings(session: Session, warnings: dict[str, list[dict[str, str]]], now: datetime) -> None:
        """Replace the ``dag_warning`` rows of each DAG in ``warnings``."""
        if not warnings:
            return
        session.execute(delete(DagWarning).where(DagWarning.dag_id.in_(list(warnings))))
        session.add_all(
            DagWarning(dag_id=dag_id, warning_type=w["kind"], message=w["message"], timestamp=now)
            for dag_id, found in warnings.items()
            for w in found
        )

    def _store_dag(self, session: Session, data: dict[str, Any], fileloc: str, now: datetime) -> str:
        """Upsert one DAG and its version; return its dag_id.

        Raises, before writing anything, when the DAG cannot be read back or
        its next run cannot be computed (``ScheduleError``).
        """
        sdag = SerializedDag.from_dict(data)
        if isinstance(sdag.timetable, UnreadableTimetable):
            raise ScheduleError(
                f"DAG {sdag.dag_id!r}: {sdag.timetable.error}", fileloc=fileloc, lineno=sdag.lineno or None
            )
        version_hash = dag_hash(data)
        dag = session.get(DagModel, sdag.dag_id)
        old_key = None
        if dag is not None:
            old = queries.current_version(session, dag)
            try:
                old_key = _schedule_key(SerializedDag.from_dict(old.serialized)) if old is not None else None
            except Exception:  # noqa: BLE001 - an old version this headrace cannot read: compute the next run afresh
                old_key = None
        # Also when no run is due: the scheduler clears next_* of a DAG whose schedule failed.
        recompute = dag is None or old_key != _schedule_key(sdag) or dag.next_run_after is None
        info = next_run_for(session, sdag, now) if recompute else None
        version = session.scalars(
            sql_select(DagVersion).where(DagVersion.dag_id == sdag.dag_id, DagVersion.version_hash == version_hash)
        ).first()
        if version is None:
            session.add(DagVersion(dag_id=sdag.dag_id, version_hash=version_hash, serialized=data, created_at=now))
        if dag is None:
            paused = sdag.is_paused_upon_creation
            if paused is None:
                paused = self.settings.get_bool("core", "dags_are_paused_at_creation")
            dag = DagModel(dag_id=sdag.dag_id, is_paused=paused)
            session.add(dag)
        dag.fileloc = fileloc
        dag.is_active = True
        dag.description = sdag.description
        dag.dag_display_name = sdag.dag_display_name
        dag.tags = list(sdag.tags)
        dag.schedule = str(sdag.schedule) if sdag.schedule is not None else None
        dag.max_active_runs = sdag.max_active_runs or self.settings.get_int("core", "max_active_runs_per_dag")
        dag.max_active_tasks = sdag.max_active_tasks or self.settings.get_int("core", "max_active_tasks_per_dag")
        dag.version_hash = version_hash
        dag.last_parsed_at = now
        store_asset_references(session, sdag, now)
        if recompute:
            apply_next_run(dag, info)
        return sdag.dag_id


__all__ = [
    "DagProcessor",
    "ParseBatch",
    "ParseError",
    "ParseResult",
    "ProcessorStats",
    "parse_files",
]
