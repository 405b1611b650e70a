"""A try's log written through a size cap (``logging.max_try_log_bytes``): the head and the tail are kept.

The task process's stdout and stderr are a pipe that the supervisor drains
into the log file — from its own wait loop (:meth:`CappedLog.polled_pipe`:
the read end joins the ``select`` the supervisor sleeps in anyway, so a try
costs no thread) or from a thread (:meth:`CappedLog.pipe`, for children the
supervisor waits on without a loop) — and the supervisor's own lines go
through the same :meth:`CappedLog.write`, so one file still tells the story
of the try in order. The file only grows (readers follow it by byte
offset):

- the first half of the cap is written as it comes (the *head*, cut at a line
  end where one is near);
- past it, one supervisor line says so, and further output goes to a ring of
  the last ``max_bytes - head - NOTE_RESERVE`` bytes (the *tail*), kept in a
  side file ``<log>.tail`` so the supervisor's memory does not grow with it;
- when the try ends (:meth:`CappedLog.close`), a line ``… N bytes dropped …``
  (when anything was) and the tail, from its first whole line, are appended
  and the side file removed.

So a capped log is at most ``max_bytes`` plus a few hundred bytes of notes,
and the try itself is unaffected: its output is always read, never blocked
for long. Should the supervisor die before ``close``, the tail stays in the
side file beside the log.
"""

from __future__ import annotations

import fcntl
import os
import select
import threading
import time
from pathlib import Path

from headrace.logs.files import format_line, open_try_log

NOTE_RESERVE = 1024
"""Bytes of the cap set aside for the two notes the cap writes."""
DRAIN_TIMEOUT = 5.0
"""Seconds :meth:`CappedLog.close` waits for a pipe's last output (a process that outlived the try may hold it)."""
_CHUNK = 1 << 16
POLLED_PIPE_BYTES = 1 << 20
"""Capacity asked for a polled pipe (``F_SETPIPE_SZ``; the kernel's default is 64 KiB): output the task writes
while its supervisor is busy elsewhere (a database statement) waits in the pipe instead of blocking the task."""
_LINE_SEARCH = 4096
"""The head is cut at a line end within this many bytes before the cut, the tail starts at one after it."""


def output_pipe() -> tuple[int, int]:
    """A pipe for a child's output, enlarged to :data:`POLLED_PIPE_BYTES` where the kernel allows it; return
    ``(read end, write end)`` (raw descriptors). Made before the log file when the child is forked first
    (:meth:`CappedLog.adopt_pipe`). Raises ``OSError`` if no pipe can be made."""
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, POLLED_PIPE_BYTES)
    except (OSError, AttributeError):  # over the user's pipe quota, or not Linux: the default size
        pass
    return read_fd, write_fd


class CappedLog:
    """The log file at ``path`` (opened for appending, folders created), capped at ``max_bytes`` bytes.

    Thread-safe: :meth:`write` may be called from any thread. Raises
    ``OSError`` if the file cannot be opened; writes after that never raise
    (a failing disk loses lines, not the try).
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.head_bytes = max_bytes // 2
        """Bytes written as they come before the cap holds output back."""
        self.tail_bytes = max(1, max_bytes - self.head_bytes - NOTE_RESERVE)
        """Bytes of the latest output kept once the head is full."""
        self.fd = open_try_log(path)
        self.written = os.fstat(self.fd).st_size
        """Bytes in the file (a re-started try appends to what is there)."""
        self.opened_size = self.written
        """Bytes the file held when it was opened here (a resumed try appends to what is there)."""
        self._tail_total = 0
        """Bytes sent to the tail ring so far (only the last ``tail_bytes`` are kept)."""
        self._ring_fd: int | None = None
        self._lock = threading.Lock()
        self._closed = False
        """Set by :meth:`close` under the lock: later writes are dropped (``fd`` may be another file's by then)."""
        self._drains: list[tuple[threading.Thread, threading.Event]] = []
        self._polled: list[int] = []
        """Read ends of the polled pipes not at end of file yet (:meth:`polled_pipe`)."""

    @property
    def tail_path(self) -> Path:
        """The side file holding the tail while the try runs."""
        return self.path.with_name(self.path.name + ".tail")

    @property
    def dropped(self) -> int:
        """Bytes of output dropped so far (0 while the log is under the cap)."""
        return max(0, self._tail_total - self.tail_bytes)

    def write(self, data: bytes) -> None:
        """Append ``data`` (bytes) within the cap; dropped once the log is closed."""
        if not data:
            return
        with self._lock:
            if self._closed:
                return
            try:
                if self._ring_fd is None:
                    data = self._write_head(data)
                if data:
                    self._to_ring(data)
            except OSError:
                pass  # a full or failing disk: the try goes on

    def line(self, writer: str, message: str, level: str = "INFO") -> None:
        """Append one headrace log line (see :func:`~headrace.logs.files.format_line`) within the cap."""
        self.write(format_line(writer, message, level).encode("utf-8", "replace"))

    def pipe(self) -> int:
        """A new pipe drained into this log by a thread; return its write end (a raw file descriptor).

        Give the write end to the child (e.g. as its stdout and stderr) and
        close it in this process once the child is forked: the thread ends at
        end of file, or at :meth:`close`.
        """
        read_fd, write_fd = os.pipe()
        stop = threading.Event()
        thread = threading.Thread(target=self._drain, args=(read_fd, stop), name="try-log", daemon=True)
        thread.start()
        self._drains.append((thread, stop))
        return write_fd

    def polled_pipe(self) -> tuple[int, int]:
        """A new pipe that the caller drains into this log; return ``(read end, write end)`` (raw descriptors).

        No thread reads it: the caller watches the read end (e.g. in the ``select`` it waits in) and calls
        :meth:`read_pipe` when it is readable; :meth:`drain` (and :meth:`close`) read what is left until
        end of file. Give the write end to the child and close it here once the child is forked. The pipe
        is enlarged to :data:`POLLED_PIPE_BYTES` where the kernel allows it. Raises ``OSError`` if no pipe
        can be made.
        """
        read_fd, write_fd = output_pipe()
        self.adopt_pipe(read_fd)
        return read_fd, write_fd

    def adopt_pipe(self, read_fd: int) -> None:
        """Drain the read end ``read_fd`` of a pipe made earlier (:func:`output_pipe`) into this log, as one of
        :meth:`polled_pipe`'s: from now on this log owns it (and closes it at end of file or :meth:`close`)."""
        os.set_blocking(read_fd, False)
        self._polled.append(read_fd)

    def polled_fds(self) -> list[int]:
        """The read ends of the polled pipes still open (to watch for :meth:`read_pipe`)."""
        return list(self._polled)

    def read_pipe(self, read_fd: int) -> bool:
        """Move what polled pipe ``read_fd`` holds now into the log, without blocking; False once at end of file.

        At end of file (every write end closed) the read end is closed and no longer listed by
        :meth:`polled_fds`.
        """
        for _ in range(POLLED_PIPE_BYTES // _CHUNK):  # a pipe's worth at most: the caller has more to watch
            try:
                data = os.read(read_fd, _CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                self._polled.remove(read_fd)
                os.close(read_fd)
                return False
            self.write(data)
            if len(data) < _CHUNK:
                return True
        return True

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait until every pipe reached end of file, at most ``timeout`` s in all; then stop reading them."""
        deadline = time.monotonic() + timeout
        while self._polled:
            left = deadline - time.monotonic()
            readable, _, _ = select.select(self._polled, [], [], max(0.0, left))
            for fd in readable:
                self.read_pipe(fd)
            if left <= 0:  # what was there is in; a process that outlived the try may hold the pipe
                for fd in self._polled:
                    os.close(fd)
                self._polled.clear()
        for thread, stop in self._drains:
            thread.join(max(0.0, deadline - time.monotonic()))
            stop.set()
        for thread, _ in self._drains:
            thread.join()
        self._drains.clear()

    def flush_tail(self) -> None:
        """Write the held-back tail now (with the dropped-bytes note), so readers see the task's last output.

        Call it once the task's output has been drained, before the try's outcome is recorded: a reader
        that follows the log stops when the try has ended. Later writes (the supervisor's closing lines,
        callbacks) go on within the cap: up to ``max_bytes`` as they come, then a new tail ring.
        """
        with self._lock:
            if self._ring_fd is None:
                return
            try:
                self._write_tail()
            except OSError:
                pass
            finally:
                os.close(self._ring_fd)
                self._ring_fd = None
                self.tail_path.unlink(missing_ok=True)
                self._tail_total = 0
                self.head_bytes = self.max_bytes

    def close(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Drain the pipes (see :meth:`drain`), append the dropped-bytes note and the tail, close the file.

        Later writes (a thread still writing) are dropped; closing again does nothing.
        """
        self.drain(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._ring_fd is not None:
                    self._write_tail()
            except OSError:
                pass
            finally:
                if self._ring_fd is not None:
                    os.close(self._ring_fd)
                    self._ring_fd = None
                    self.tail_path.unlink(missing_ok=True)
                os.close(self.fd)

    # --- under the lock ------------------------------------------------------------------------------------

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            self.written += n
            view = view[n:]

    def _write_head(self, data: bytes) -> bytes:
        """Write what fits in the head; return the rest (and start the tail ring if there is any)."""
        room = self.head_bytes - self.written
        if len(data) <= room:
            self._append(data)
            return b""
        cut = max(0, room)
        newline = data.rfind(b"\n", max(0, cut - _LINE_SEARCH), cut)
        if newline >= 0:
            cut = newline + 1
        self._append(data[:cut])
        if self.written and not data[:cut].endswith(b"\n") and cut:
            self._append(b"\n")
        self._append(
            format_line(
                "supervisor",
                f"this log reached half of logging.max_try_log_bytes ({self.max_bytes} bytes): the rest of the "
                f"try's output is held back and written when the try ends, its last {self.tail_bytes} bytes kept",
                "WARNING",
            ).encode()
        )
        self._ring_fd = os.open(self.tail_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        return data[cut:]

    def _to_ring(self, data: bytes) -> None:
        assert self._ring_fd is not None
        size = self.tail_bytes
        total = self._tail_total + len(data)
        keep = data[-size:]
        start = (total - len(keep)) % size
        first = keep[: size - start]
        os.pwrite(self._ring_fd, first, start)
        if len(keep) > len(first):
            os.pwrite(self._ring_fd, keep[len(first) :], 0)
        self._tail_total = total

    def _write_tail(self) -> None:
        assert self._ring_fd is not None
        size = self.tail_bytes
        kept = min(self._tail_total, size)
        start = (self._tail_total - kept) % size
        skip = 0
        if self.dropped:
            first = os.pread(self._ring_fd, min(_LINE_SEARCH, kept), start)
            if start + len(first) > size:
                first = first[: size - start] + os.pread(self._ring_fd, len(first) - (size - start), 0)
            newline = first.find(b"\n")
            skip = newline + 1 if 0 <= newline < len(first) - 1 else 0
            self._append(
                format_line(
                    "supervisor",
                    f"{self.dropped + skip} bytes dropped: this log exceeded logging.max_try_log_bytes "
                    f"({self.max_bytes} bytes); the last {kept - skip} bytes follow",
                    "WARNING",
                ).encode()
            )
        done = skip
        while done < kept:
            offset = (start + done) % size
            chunk = os.pread(self._ring_fd, min(_CHUNK * 16, kept - done, size - offset), offset)
            if not chunk:
                break
            self._append(chunk)
            done += len(chunk)

    # --- the drain thread ----------------------------------------------------------------------------------

    def _drain(self, read_fd: int, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                ready, _, _ = select.select([read_fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(read_fd, _CHUNK)
                if not data:
                    return
                self.write(data)
        finally:
            os.close(read_fd)


__all__ = ["DRAIN_TIMEOUT", "NOTE_RESERVE", "POLLED_PIPE_BYTES", "CappedLog"]
