"""Per-try log files on local disk: the path of a try's log, appending lines, reading.

One file per try::

    {logging.base_log_folder}/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={n}.log

(with ``map_index={i}/`` before ``attempt=`` for a mapped task instance). Ids
are percent-encoded where they hold anything but letters, digits and
``_ - . : +`` (see :func:`encode_component`), so the path is injective in
(dag_id, run_id, task_id, map_index, try_number) and ordinary ids keep their
plain, Airflow-like paths.

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


ORDINARY_ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:+")
"""Characters written as they are in a log path; every other byte of an id's UTF-8 is written ``%XX``."""

MAX_COMPONENT_BYTES = 255
"""Longest file name (``NAME_MAX`` on Linux, macOS and Windows file systems); longer components are split."""


def encode_component(key: str, value: str) -> str:
    """``key=value`` as one or more path components (joined by ``/``), ``value`` percent-encoded.

    Letters, digits and ``_ - . : +`` stay as they are, so the paths of
    ordinary ids are the plain ``key=value``; every other byte of the UTF-8
    (``/``, ``%``, ``=``, spaces, non-ASCII, ...) becomes ``%XX`` (upper-case
    hex). The encoding is injective: distinct values never share a path
    (``coll/a`` is ``coll%2Fa``, ``coll_a`` stays ``coll_a``), and no
    component can be ``.`` or ``..``. A component longer than
    :data:`MAX_COMPONENT_BYTES` continues in sub-folders named ``=…`` (``=``
    never occurs in an encoded value, so the split cannot be confused with
    the next ``key=``).
    """
    encoded = "".join(
        ch if ch in ORDINARY_ID_CHARACTERS else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in value
    )
    first = f"{key}={encoded}"
    if len(first) <= MAX_COMPONENT_BYTES:
        return first
    head = MAX_COMPONENT_BYTES
    rest = first[head:]
    step = MAX_COMPONENT_BYTES - 1
    return "/".join([first[:head], *(f"={rest[i : i + step]}" for i in range(0, len(rest), step))])


def try_log_path(
    base_log_folder: str | Path, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
) -> Path:
    """Path of the log file of one try (folders not created).

    ``{base}/dag_id={dag_id}/run_id={run_id}/task_id={task_id}[/map_index={map_index}]/attempt={try_number}.log``,
    each id encoded by :func:`encode_component` (injective: two tries never
    share a file). ``map_index`` is a component only for a mapped task
    instance (``map_index >= 0``; -1 means not mapped), as in Airflow.
    """
    parts = [
        encode_component("dag_id", dag_id),
        encode_component("run_id", run_id),
        encode_component("task_id", task_id),
    ]
    if map_index >= 0:
        parts.append(f"map_index={int(map_index)}")
    return Path(base_log_folder).joinpath(*parts, f"attempt={int(try_number)}.log")


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
