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
The server also builds the supervisors' database engine once and runs their
statements once (rolled back) so its compiled-statement cache is warm; each
child keeps that engine with a fresh connection pool. The heap is then frozen
(``gc.freeze``) so children do not copy it on write.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import select
import signal
import sys
import time
import traceback
from types import FrameType

# Pre-imported for the children (their cost is paid once, here): the supervisor and
# everything it loads (authoring, DAG file loader, sqlalchemy, psutil, pydantic, jinja2),
# the operators DAG files import, and both database drivers' dialects.
import headrace.operators  # noqa: F401
import psutil
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401
from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.supervisor.protocol import LineBuffer
from headrace.supervisor.request import TryRequest
from headrace.supervisor.supervise import EXIT_ERROR, supervise, warm_up


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
        return supervise(settings, db, request)
    finally:
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


def serve(settings: Settings) -> int:
    """Serve requests from stdin until EOF or the idle timeout; return the exit code (0)."""
    idle_timeout = float(settings.get("executor", "forkserver_idle_timeout"))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, _ignore)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scheduler's to handle; EOF tells us
    db = Database(settings.database_url, pool_size=1)
    try:
        warm_up(db)
    except Exception as exc:  # noqa: BLE001 - only slower supervisors; they report DB trouble themselves
        print(f"headrace fork server: could not warm the database engine: {exc}", file=sys.stderr, flush=True)
    db.release_connections()
    # Everything allocated so far lives as long as the server: keep the collector away from it, so
    # forked supervisors do not copy those pages on write when a collection touches their headers.
    gc.collect()
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
        if _reap(children):
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
                pid = _fork_supervisor(settings, db, request, [wake_r, wake_w])
                children[pid] = request
                try:
                    start_time = psutil.Process(pid).create_time()
                except psutil.NoSuchProcess:
                    start_time = None
                _emit({"event": "started", "ti_id": request.ti_id, "try_number": request.try_number,
                       "pid": pid, "start_time": start_time})


def _reap(children: dict[int, TryRequest]) -> int:
    """Reap exited supervisors and report them; return how many."""
    reaped = 0
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped += 1
        request = children.pop(pid, None)
        if request is not None:
            _emit({"event": "exited", "ti_id": request.ti_id, "try_number": request.try_number, "pid": pid,
                   "exit_code": os.waitstatus_to_exitcode(status)})
    return reaped


def main() -> int:
    """Entry point: settings from the environment, then :func:`serve`."""
    try:
        return serve(load_settings())
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return 0
        raise


if __name__ == "__main__":
    sys.exit(main())
