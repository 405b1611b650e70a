"""The fork server: a process that has already imported headrace and forks one supervisor per try.

Started by :class:`~headrace.executors.local.LocalExecutor` as
``python -m headrace.executors.forkserver`` with the settings in its
environment. It speaks newline-delimited JSON over its stdin/stdout:

* in: one :class:`~headrace.supervisor.request.TryRequest` per line;
* out: ``{"event": "started", "ti_id", "try_number", "pid", "start_time"}`` right
  after each fork, and ``{"event": "exited", "ti_id", "try_number", "pid",
  "exit_code"}`` once it reaped that supervisor (``exit_code`` negative: killed by
  that signal).

It is single-threaded and sleeps in ``select`` on stdin and a SIGCHLD wake-up
descriptor (``signal.set_wakeup_fd``). Each supervisor calls ``setsid()``: it
is detached from the server and the scheduler, so it survives both dying and
is not hit by the terminal's Ctrl-C. The server exits

* on stdin EOF (its parent died or closed it) — at once, without touching the
  supervisors, which finish their tries and record them on their own;
* after ``executor.forkserver_idle_timeout`` seconds with no live supervisor
  and no request — the executor starts it again on demand, so an idle
  headrace keeps no helper process around.

Every module a supervisor needs is imported here, before the first fork, so a
try starts in milliseconds instead of paying an interpreter start and imports.
It also finds, once, the cgroup hierarchy tries are contained in
(:func:`~headrace.supervisor.cgroups.hierarchy_in_use`), and removes the try
cgroups that killed supervisors left (what is in them is killed:
:func:`~headrace.supervisor.cgroups.remove_stale_cgroups`) when it starts and
each time one of its supervisors ends abnormally (by a signal, or with an
exit code other than recorded / claim lost) — instead of every supervisor
looking after every try. The server also builds the supervisors' database engine once and runs their
statements once (rolled back) so its compiled-statement cache is warm; each
child keeps that engine with a fresh connection pool. The heap is then frozen
(``gc.freeze``) so children do not copy it on write.

**DAG file preload** (``executor.preload_dag_files``, on by default). The
first time a try of a DAG file is requested, the server imports that file
itself (:func:`headrace.dagfiles.loader.load_dags`) and remembers its DAGs,
keyed by path and the file's ``(mtime_ns, size)`` taken before the import.
Supervisors forked afterwards inherit the module, and their task process looks
the DAG and task up in it instead of importing the file again
(:func:`~headrace.dagfiles.loader.remembered_dags` checks the file is still
unchanged, else the task process imports it afresh as before). When a request
arrives for a file whose version changed, the stale module is dropped and the
server imports the new version before forking. Safeguards:

* the import runs under a time limit (``core.dagbag_import_timeout``, by
  ``setitimer``: the server is single-threaded) with stdin/stdout pointed at
  ``/dev/null`` (stdout is the executor's event pipe); on timeout or any error
  the failure is remembered for that file version and its tries import the
  file themselves — so a broken file fails in the task process with the real
  error, exactly as without preload;
* if the import left the process with more than one thread (user code started
  one), the server must not fork any more: it reports ``{"event":
  "no_preload", "fileloc"}``, stops reading and exits at once. The executor
  resends the requests it never confirmed to a new server, started with
  ``--no-preload <fileloc>`` for every such file (those are imported per try).

The trade-off: a DAG file's top-level code runs once per fork server (and
again after each edit) rather than once per try. That is what Airflow's best
practices already ask of it — top-level code must be cheap, deterministic and
free of side effects (no threads, connections or work at import); tries still
start from a fresh fork, so nothing a try does leaks into the next one. Turn
preload off for DAG files that rely on per-try import side effects.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from types import FrameType

import croniter  # type: ignore[import-untyped]  # noqa: F401  # the authoring API imports it on first use; the children should not pay for it
import jinja2  # noqa: F401  # likewise: every try renders its templates
import psutil
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401

# Pre-imported for the children (their cost is paid once, here): the supervisor and
# everything it loads (authoring, DAG file loader, sqlalchemy, psutil, pydantic, jinja2),
# the operators DAG files import, and both database drivers' dialects.
import headrace.operators  # noqa: F401
from headrace.config import Settings, load_settings
from headrace.dagfiles.loader import (
    FileVersion,
    file_version,
    forget_dags,
    load_dags,
    prepare_dag_imports,
    remember_dags,
)
from headrace.db.engine import Database
from headrace.storage.objects import preload as preload_store
from headrace.storage.stores import remote_logs_url
from headrace.supervisor.cgroups import (
    ContainmentError,
    Hierarchy,
    hierarchy_in_use,
    libc_prctl,
    remove_stale_cgroups,
)
from headrace.supervisor.identity import process_start_time
from headrace.supervisor.protocol import LineBuffer
from headrace.supervisor.request import TryRequest
from headrace.supervisor.sql_store import SqlTryStore, warm_up
from headrace.supervisor.supervise import EXIT_CLAIM_LOST, EXIT_ERROR, EXIT_RECORDED, supervise


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _fill_malloc_holes() -> None:
    """Allocate (and keep for good) the free memory inside the C heap, so children allocate past it.

    A forked child's ``malloc`` (SQLite's schema, a new connection, large Python objects) would
    otherwise reuse the free chunks scattered through the server's heap: every one lies in a page
    shared with the server, so each small allocation costs a copy-on-write page fault. With the holes
    filled, children's allocations come from the top of the heap, a few fresh pages. The cost: the
    server keeps what was already free (a MiB or two). glibc only (``mallinfo2``); a no-op elsewhere.
    """
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
        malloc = libc.malloc
    except (OSError, AttributeError):
        return
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    for size in (4096, 1024, 256, 64, 16):
        while True:
            info = mallinfo2()
            batch = (info.fordblks - info.keepcost) // (size + 16) // 2  # free bytes not at the top
            if batch < 1:
                break
            for _ in range(batch):
                malloc(size)  # deliberately never freed
            if mallinfo2().arena != info.arena:  # the heap grew: the holes of this size are gone
                break


def _emit(event: dict[str, object]) -> None:
    data = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    while data:
        try:
            written = os.write(1, data)
        except BrokenPipeError:  # the executor is gone; stdin EOF will end us
            return
        data = data[written:]


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """SIGCHLD handler: the wake-up descriptor does the work."""


class _ImportTimeout(BaseException):
    """Raised by SIGALRM into a DAG file's import that took too long (BaseException: user code may catch Exception)."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _ImportTimeout


def _thread_count() -> int:
    """Threads of this process: Python's and any a C extension started (``/proc/self/task``)."""
    try:
        return max(threading.active_count(), len(os.listdir("/proc/self/task")))
    except OSError:
        return threading.active_count()


class Preloader:
    """The DAG files this server imported, by path and file version; see the module docstring."""

    def __init__(self, timeout: float, deny: set[str]) -> None:
        self.timeout = timeout
        self.deny = deny
        """Paths never to import here (their import started a thread in an earlier server)."""
        self.versions: dict[str, FileVersion | None] = {}
        """Path → version imported (or that failed to import: ``failed`` holds those)."""
        self.failed: set[tuple[str, FileVersion]] = set()

    def prepare(self, fileloc: str) -> bool:
        """Make sure ``fileloc``'s current version was tried; False if the server must stop forking (threads)."""
        if fileloc in self.deny:
            return True
        version = file_version(fileloc)
        if version is None:  # missing: the task process reports it
            return True
        if fileloc in self.versions:
            if self.versions[fileloc] == version:
                return True
            self._drop(fileloc)
        if (fileloc, version) in self.failed:
            return True
        self.versions[fileloc] = version
        error = self._import(fileloc, version)
        if error is not None:
            self.failed.add((fileloc, version))
            print(
                f"headrace fork server: not preloading {fileloc} ({error}); its tries import it themselves",
                file=sys.stderr,
                flush=True,
            )
        if _thread_count() > 1:
            self._drop(fileloc)
            return False
        _fill_malloc_holes()  # what the import freed
        gc.freeze()  # the module's objects too: children must not copy them on write
        return True

    def _drop(self, fileloc: str) -> None:
        self.versions.pop(fileloc, None)
        forget_dags(fileloc)
        gc.unfreeze()  # let the collector free the stale module (cycles), then freeze what remains
        gc.collect()
        gc.freeze()

    def _import(self, fileloc: str, version: FileVersion) -> str | None:
        """Import ``fileloc`` with a time limit and std streams away from the executor's pipes; the error, or None."""
        saved = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        sys.stdout.flush()
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        previous = signal.signal(signal.SIGALRM, _alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
            try:
                dags = load_dags(fileloc)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            remember_dags(fileloc, version, dags)
            return None
        except _ImportTimeout:
            return f"import took longer than {self.timeout:g} s"
        except BaseException as exc:  # noqa: BLE001 - any failure: the tries import it and report it
            return f"{type(exc).__name__}: {exc}"
        finally:
            signal.signal(signal.SIGALRM, previous)
            try:
                sys.stdout.flush()
            except Exception:  # noqa: BLE001 - whatever the file printed goes to /dev/null
                pass
            os.dup2(saved[0], 0)
            os.dup2(saved[1], 1)
            os.close(saved[0])
            os.close(saved[1])


def _run_supervisor(settings: Settings, db: Database, request: TryRequest, close_fds: list[int]) -> int:
    """In the forked child: detach, drop the server's descriptors, run the try."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    for fd in close_fds:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # the server's stdin/stdout pipes belong to the executor
    os.dup2(null, 1)
    os.close(null)
    # The server's engine, with a fresh pool (Database notices the fork): its compiled cache is warm.
    try:
        store = SqlTryStore(settings, db)
        return supervise(settings, store, request, sweep_stale_cgroups=False)  # the server sweeps (see _reap)
    finally:
        # SQLite: the process ends right after (os._exit) with no transaction open, which lets go of the
        # file and its locks as cleanly as a close would; closing through the pool only cost time.
        if not db.is_sqlite:
            db.dispose()


def _fork_supervisor(settings: Settings, db: Database, request: TryRequest, close_fds: list[int]) -> int:
    db.release_connections()  # children inherit no open connection
    pid = os.fork()
    if pid == 0:
        code = EXIT_ERROR
        try:
            code = _run_supervisor(settings, db, request, close_fds)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def warm_templates() -> None:
    """Build a template environment as a try does and render with it, so that what Jinja makes on first use
    (the sandbox, the ``do`` extension, the lexer's compiled rules, the native environment) is made once here
    and inherited by every try, instead of costing each task process about 10 ms."""
    from headrace.authoring.context import make_jinja_env

    for native in (False, True):
        make_jinja_env(native=native).from_string("{{ x }}{% do [] %}").render(x=1)


def serve(settings: Settings, no_preload: set[str] | None = None) -> int:
    """Serve requests from stdin until EOF or the idle timeout; return the exit code (0).

    ``no_preload``: DAG files not to import here (with ``executor.preload_dag_files`` on).
    """
    idle_timeout = settings.get_float("executor", "forkserver_idle_timeout")
    prepare_dag_imports(settings)  # DAGs folder on sys.path, core.airflow_imports: inherited by every try
    preloader = None
    if settings.get("executor", "preload_dag_files"):
        preloader = Preloader(settings.get_float("core", "dagbag_import_timeout"), set(no_preload or ()))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, _ignore)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scheduler's to handle; EOF tells us
    db = Database.from_settings(settings, role="supervisor", single_connection=True)  # each fork: its own
    try:
        warm_up(db)
    except Exception as exc:  # noqa: BLE001 - only slower supervisors; they report DB trouble themselves
        print(f"headrace fork server: could not warm the database engine: {exc}", file=sys.stderr, flush=True)
    db.release_connections()
    hierarchy: Hierarchy | None = None
    try:  # found once here, inherited by every supervisor (cgroups.py)
        hierarchy = hierarchy_in_use(settings.get_str("core", "try_containment"))
    except ContainmentError as exc:  # each try then fails with this error, recorded on it
        print(f"headrace fork server: {exc}", file=sys.stderr, flush=True)
    _sweep(hierarchy)  # try cgroups left by supervisors killed while no server of ours was running
    libc_prctl()  # each supervisor makes itself a subreaper: looked up once, here
    warm_templates()
    for url in (
        remote_logs_url(settings),
        settings.get_str("core", "xcom_objectstorage_path"),
    ):
        preload_store(url)  # s3fs and its botocore take ~0.3 s to import: once here, not in every supervisor
    # Everything allocated so far lives as long as the server: keep the collector away from it, so
    # forked supervisors do not copy those pages on write when a collection touches their headers.
    gc.collect()
    _fill_malloc_holes()
    gc.freeze()
    children: dict[int, TryRequest] = {}
    lines = LineBuffer()
    idle_since = time.monotonic()
    while True:
        timeout = None
        if not children:
            timeout = idle_since + idle_timeout - time.monotonic()
            if timeout <= 0:
                return 0
        try:
            readable, _, _ = select.select([0, wake_r], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select; kept for clarity
            continue
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if _reap(children, hierarchy):
            idle_since = time.monotonic()
        if 0 in readable:
            data = os.read(0, 1 << 16)
            if not data:
                return 0
            for line in lines.feed(data):
                if not line.strip():
                    continue
                try:
                    request = TryRequest.from_json(line)
                except ValueError as exc:
                    print(f"headrace fork server: ignoring a bad request: {exc}", file=sys.stderr, flush=True)
                    continue
                if preloader is not None and not preloader.prepare(request.fileloc):
                    # Importing it started a thread: never fork from a multi-threaded process. Exit now;
                    # the executor resends what we did not start to a new server that will not preload it.
                    _emit({"event": "no_preload", "fileloc": request.fileloc})
                    sys.stderr.flush()
                    os._exit(0)  # not sys.exit: it would wait for the file's (non-daemon) threads
                pid = _fork_supervisor(settings, db, request, [wake_r, wake_w])
                children[pid] = request
                try:
                    start_time = process_start_time(pid)
                except psutil.NoSuchProcess:
                    start_time = None
                _emit(
                    {
                        "event": "started",
                        "ti_id": request.ti_id,
                        "try_number": request.try_number,
                        "pid": pid,
                        "start_time": start_time,
                    }
                )


def _sweep(hierarchy: Hierarchy | None) -> None:
    """Remove the try cgroups of killed supervisors, killing what is left in them; say so on stderr."""
    removed = remove_stale_cgroups(hierarchy)
    if removed:
        print(
            f"headrace fork server: removed {removed} try cgroup(s) left by killed supervisors "
            "(killing what was still running in them)",
            file=sys.stderr,
            flush=True,
        )


def _reap(children: dict[int, TryRequest], hierarchy: Hierarchy | None) -> int:
    """Reap exited supervisors and report them; return how many.

    One that ended abnormally (killed by a signal, or an exit code other than ``EXIT_RECORDED`` /
    ``EXIT_CLAIM_LOST``) may have left its try's cgroup: the stale ones in ``hierarchy`` are removed
    (what is in them killed) before its end is reported.
    """
    reaped = 0
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped += 1
        code = os.waitstatus_to_exitcode(status)
        if code not in (EXIT_RECORDED, EXIT_CLAIM_LOST):
            _sweep(hierarchy)
        request = children.pop(pid, None)
        if request is not None:
            _emit(
                {
                    "event": "exited",
                    "ti_id": request.ti_id,
                    "try_number": request.try_number,
                    "pid": pid,
                    "exit_code": code,
                }
            )
    return reaped


def main() -> int:
    """Entry point: settings from the environment, then :func:`serve`."""
    args = sys.argv[1:]
    no_preload = {args[i + 1] for i in range(len(args) - 1) if args[i] == "--no-preload"}
    try:
        return serve(load_settings(), no_preload)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return 0
        raise


if __name__ == "__main__":
    sys.exit(main())
