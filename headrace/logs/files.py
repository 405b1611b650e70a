"""Per-try log files on local disk: the path of a try's log, appending lines, reading.

One file per try::

    {logging.base_log_folder}/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={n}.log

The task process's stdout and stderr are that file (opened with ``O_APPEND``),
and the supervisor appends its own lines to it, so one file tells the whole
story of a try in order. Lines written by headrace start with an ISO 8601 UTC
timestamp and the writer's name in braces.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

LOG_LINE_FORMAT = "[%(asctime)s] {%(name)s} %(levelname)s - %(message)s"
"""``logging`` format of headrace's lines in try logs (the task process uses it too)."""


def _safe(part: str) -> str:
    # ids are validated by authoring, but run_ids come from users via triggers: keep them in their folder.
    return part.replace("/", "_").replace("\\", "_").replace("\0", "_") if part not in (".", "..") else f"_{part}"


def try_log_path(base_log_folder: str | Path, dag_id: str, run_id: str, task_id: str, try_number: int) -> Path:
    """Path of the log file of one try (folders not created)."""
    return (
        Path(base_log_folder)
        / f"dag_id={_safe(dag_id)}"
        / f"run_id={_safe(run_id)}"
        / f"task_id={_safe(task_id)}"
        / f"attempt={int(try_number)}.log"
    )


def open_try_log(path: Path) -> int:
    """Create the folders and open ``path`` for appending; return the raw file descriptor.

    The caller owns the descriptor (close it, or ``dup2`` it onto stdout/stderr).
    Raises ``OSError`` if the folder cannot be created or the file opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def timestamp() -> str:
    """Now in UTC as written at the start of log lines: ``2024-01-01T12:00:00.123+0000``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def format_line(writer: str, message: str, level: str = "INFO") -> str:
    """One log line as headrace writes it (with the trailing newline)."""
    return f"[{timestamp()}] {{{writer}}} {level} - {message}\n"


def append_line(path: Path, writer: str, message: str, level: str = "INFO") -> None:
    """Append one timestamped line to the log at ``path`` (one ``write``, so lines never interleave)."""
    fd = open_try_log(path)
    try:
        os.write(fd, format_line(writer, message, level).encode("utf-8", "replace"))
    finally:
        os.close(fd)


def read_try_log(path: str | Path, offset: int = 0, max_bytes: int | None = None) -> tuple[str, int]:
    """Read the log from byte ``offset``; return ``(text, next_offset)``.

    ``max_bytes`` caps what is read (None: to the end). A missing file reads as
    ``("", offset)`` — the try may not have started yet. Undecodable bytes are
    replaced, never raised.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read() if max_bytes is None else f.read(max_bytes)
    except FileNotFoundError:
        return "", offset
    return data.decode("utf-8", "replace"), offset + len(data)
