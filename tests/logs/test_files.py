"""Per-try log files: path layout, appending, reading by offset."""

from __future__ import annotations

import re
from pathlib import Path

from headrace.logs.files import append_line, read_try_log, try_log_path


def test_path_layout(tmp_path: Path) -> None:
    path = try_log_path(tmp_path, "etl", "manual__2024-01-01T00:00:00+00:00", "load", 2)
    assert path == tmp_path / "dag_id=etl/run_id=manual__2024-01-01T00:00:00+00:00/task_id=load/attempt=2.log"
    assert try_log_path(tmp_path, "d", "../x/y", "t", 1).parent.parent.name == "run_id=.._x_y"


def test_append_and_read(tmp_path: Path) -> None:
    path = try_log_path(tmp_path, "d", "r", "t", 1)
    assert read_try_log(path) == ("", 0)
    append_line(path, "supervisor", "try 1 started: pid 1 on host h")
    append_line(path, "supervisor", "ünïcode", "ERROR")
    text, offset = read_try_log(path)
    lines = text.splitlines()
    assert re.fullmatch(
        r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000\] \{supervisor\} INFO - try 1 started: "
        r"pid 1 on host h",
        lines[0],
    )
    assert lines[1].endswith("{supervisor} ERROR - ünïcode")
    assert read_try_log(path, offset) == ("", offset)
    head, next_offset = read_try_log(path, 0, max_bytes=5)
    assert head == lines[0][:5] and next_offset == 5
