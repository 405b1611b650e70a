"""Remote try logs: shipping a running try's log to ``logging.remote_base_log_folder`` and reading it back.

A try's remote log is the object ``{remote_base_log_folder}/{key}``, where the key is the local path below
``logging.base_log_folder`` (:func:`log_key`: ``dag_id=…/run_id=…/task_id=…/attempt=N.log``), so the remote
folder mirrors the local one, as Airflow's remote task handlers do.

Shipping (:class:`LogShipper`) is the supervisor's, never the task process's: a thread of the supervisor
uploads the whole local file every ``logging.remote_log_interval`` seconds when it has grown, and once more
when the try has ended (:meth:`LogShipper.finish`). Object stores have no append, so each upload replaces
the object with the file as it is: a supervisor killed with SIGKILL leaves a remote log missing at most the
last interval's lines. A failed upload is logged (once per outage, also in the try's log) and simply tried
again at the next interval; it never touches the try's outcome.

A try that resumes (a deferral that fired, a sensor's next poke in reschedule mode) appends to the log of
the same try number, possibly on another host, and the local file it appends to may hold only lines that
another process wrote there meanwhile (the triggerer's, with ``delete_local_logs`` or on another host):
the remote content that the local file does not already begin with is kept in front of what this
supervisor ships (:func:`remote_prefix`), so the first part of the log is never overwritten.

Readers (:func:`read_log_bytes`) read the local file when it exists (it is the freshest), else the remote
object, by byte range: a log stays readable after its worker's disk is gone. The remote object wins over a
local file that is shorter than it (a stub: lines another process appended here, the rest shipped from
elsewhere), and over any local file when the caller knows the try ran on another host.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from headrace.logs.files import try_log_path
from headrace.storage.objects import ObjectStore

log = logging.getLogger("headrace.logs")

FINAL_UPLOAD_TIMEOUT = 30.0
"""Seconds a supervisor keeps trying the final upload of a try's log (after the outcome is recorded) before it
gives up and leaves the log on local disk, saying so."""
_FINAL_RETRY_PAUSE = 1.0
"""Seconds between attempts at the final upload."""

Say = Callable[[str, str], None]
"""Writes a line ``(message, level)`` into the try's log as the supervisor."""


def log_key(dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
    """The key of a try's remote log: its local path below ``logging.base_log_folder`` (``/``-separated)."""
    return try_log_path("", dag_id, run_id, task_id, try_number, map_index).as_posix()


class LogShipper:
    """Ships one try's local log to ``store`` as ``key``: every ``interval`` seconds from a thread, and at the end.

    ``resumed``: the try was reopened (deferral or reschedule); ``opened_size``: bytes the local file held when
    this supervisor opened it. ``say`` writes a line in the try's log (an upload failing, working again).
    """

    def __init__(
        self,
        store: ObjectStore,
        local: Path,
        key: str,
        interval: float,
        say: Say,
        *,
        resumed: bool = False,
        opened_size: int = 0,
    ) -> None:
        self.store = store
        self.local = local
        self.key = key
        self.interval = interval
        self._say = say
        self._resumed = resumed
        self._opened_size = opened_size
        """Kept for callers; the prefix no longer depends on it (see :func:`remote_prefix`)."""
        self._prefix: bytes | None = None if resumed else b""
        """Remote content kept in front of the local file (None: not looked at yet)."""
        self._shipped = -1
        """Bytes of the local file in the last successful upload (-1: none yet)."""
        self._failing = False
        self.uploads = 0
        """Successful uploads so far."""
        self.failures = 0
        """Failed uploads so far."""
        self.final_done = False
        """True once the final upload (after :meth:`finish`) succeeded."""
        self._stop = threading.Event()
        self._final_timeout = FINAL_UPLOAD_TIMEOUT
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)

    @property
    def url(self) -> str:
        """Where the log goes."""
        return self.store.url_of(self.key)

    def start(self) -> None:
        """Start shipping at intervals (the first upload comes after one interval)."""
        self._thread.start()

    def finish(self, timeout: float = FINAL_UPLOAD_TIMEOUT) -> bool:
        """Stop the interval uploads and upload the log as it is now, trying again for up to ``timeout``
        seconds; return whether the final upload succeeded. Call it once the log is complete (closed)."""
        self._final_timeout = timeout
        self._stop.set()
        if not self._thread.is_alive() and not self.final_done:
            try:
                self._thread.start()  # finish() without start(): the final upload alone
            except RuntimeError:
                pass
        self._thread.join(timeout + 5.0)  # an upload under way when asked is bounded by the store's own timeouts
        return self.final_done

    # --- the thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._ship(final=False)
        deadline = time.monotonic() + self._final_timeout
        while not self._ship(final=True):
            if time.monotonic() + _FINAL_RETRY_PAUSE > deadline:
                return
            time.sleep(_FINAL_RETRY_PAUSE)
        self.final_done = True

    def _ship(self, final: bool) -> bool:
        """One upload if the file grew (always when ``final``); return whether the remote log is up to date."""
        try:
            size = self.local.stat().st_size
        except FileNotFoundError:
            return True  # nothing written yet (or removed by someone else): nothing to ship
        if size == self._shipped and not final:
            return True
        try:
            if self._prefix is None:
                self._prefix = self._remote_prefix()
            if self._prefix:
                self.store.put_bytes(self.key, self._prefix + self.local.read_bytes())
            else:
                self.store.put_file(self.local, self.key)
        except Exception as exc:  # noqa: BLE001 - any failure of the store: try again at the next interval
            self.failures += 1
            if not self._failing:
                self._failing = True
                message = f"cannot ship this log to {self.url} ({type(exc).__name__}: {exc}); " + (
                    "trying again" if final else f"trying again every {self.interval:g} s"
                )
                log.warning("%s: %s", self.local, message)
                self._say(message, "WARNING")
            return False
        self._shipped = size
        self.uploads += 1
        if self._failing:
            self._failing = False
            log.warning("%s: shipping to %s works again", self.local, self.url)
            if not final:
                self._say(f"shipping this log to {self.url} works again", "INFO")
        return True

    def _remote_prefix(self) -> bytes:
        """What the remote log holds that the local file does not begin with (this try resumed)."""
        if not self.store.size(self.key):
            return b""
        try:
            local = self.local.read_bytes()
        except FileNotFoundError:
            local = b""
        return remote_prefix(self.store.read(self.key), local)


_PROBE = 64
"""Bytes of the local log's beginning searched for in the remote log (:func:`remote_prefix`)."""


def remote_prefix(remote: bytes, local: bytes) -> bytes:
    """The part of ``remote`` to keep in front of ``local``: all of it, less its longest end that ``local``
    begins with (the lines both hold: the remote log shipped from this file before, or from the file that
    this one continues).

    ``remote`` = first part + T, ``local`` = T + more → first part; ``local`` holding none of it (a stub the
    triggerer recreated) → all of ``remote``; ``local`` beginning with all of ``remote`` → nothing.
    """
    size = len(remote)
    overlap = min(size, len(local))
    if not overlap:
        return remote
    probe = local[: min(_PROBE, overlap)]
    remote_view, local_view = memoryview(remote), memoryview(local)
    start = size - overlap
    while start < size:
        if size - start >= len(probe):
            start = remote.find(probe, start)
            if start < 0:
                start = size - len(probe) + 1  # only the shorter ends remain
                continue
        if remote_view[start:] == local_view[: size - start]:
            return remote[:start]
        start += 1
    return remote


def read_log_bytes(
    local: Path,
    store: ObjectStore | None,
    key: str,
    offset: int,
    max_bytes: int | None,
    *,
    prefer_remote: bool = False,
) -> bytes:
    """Bytes of a try's log from ``offset`` (at most ``max_bytes``): the local file if it exists, else the remote
    object (``store`` None: local only). The remote object is read instead of a local file that is shorter than
    it, or of any local file with ``prefer_remote`` (the try ran on another host). A log found nowhere, or an
    offset at or past its end, reads as nothing.

    Raises ``OSError`` (or the storage library's error) when the local file is gone and the store cannot be read;
    with a local file, a store that cannot be read is logged and the local file read.
    """
    try:
        local_size: int | None = local.stat().st_size
    except FileNotFoundError:
        local_size = None
    if store is not None and local_size is not None:
        try:
            remote_size = store.size(key)
        except Exception as exc:  # noqa: BLE001 - whatever the storage library raises: the local file will do
            log.warning(
                "reading %s locally: %s cannot be read: %s: %s", local, store.url_of(key), type(exc).__name__, exc
            )
            remote_size = None
        if remote_size is not None and (prefer_remote or remote_size > local_size):
            return _read_remote(store, key, remote_size, offset, max_bytes)
    try:
        with open(local, "rb") as f:
            if offset >= os.fstat(f.fileno()).st_size:
                return b""
            f.seek(offset)
            return f.read() if max_bytes is None else f.read(max_bytes)
    except FileNotFoundError:
        pass
    if store is None:
        return b""
    size = store.size(key)
    if size is None:
        return b""
    return _read_remote(store, key, size, offset, max_bytes)


def _read_remote(store: ObjectStore, key: str, size: int, offset: int, max_bytes: int | None) -> bytes:
    if offset >= size:
        return b""
    end = size if max_bytes is None else min(size, offset + max_bytes)
    return store.read(key, offset, end)


__all__ = ["FINAL_UPLOAD_TIMEOUT", "LogShipper", "log_key", "read_log_bytes", "remote_prefix"]
