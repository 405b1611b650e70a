"""Per-try log files: path layout, appending, reading by offset."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from headrace.logs.files import MAX_COMPONENT_BYTES, append_line, read_try_log, try_log_path


def test_path_layout(tmp_path: Path) -> None:
    path = try_log_path(tmp_path, "etl", "manual__2024-01-01T00:00:00+00:00", "load", 2)
    assert path == tmp_path / "dag_id=etl/run_id=manual__2024-01-01T00:00:00+00:00/task_id=load/attempt=2.log"
    # Not ordinary: encoded, so the path stays in its folder and is not shared with "_"-spelt ids.
    assert try_log_path(tmp_path, "d", "../x/y", "t", 1).parent.parent.name == "run_id=..%2Fx%2Fy"
    assert try_log_path(tmp_path, "etl", "r", "load", 1, map_index=3) == (
        tmp_path / "dag_id=etl/run_id=r/task_id=load/map_index=3/attempt=1.log"
    )


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


def _decode(base: Path, path: Path) -> tuple[str, str, str, int, int]:
    """The (dag_id, run_id, task_id, map_index, try_number) a log path was made from (the layout, read back)."""
    fields: dict[str, str] = {}
    key = ""
    for part in path.relative_to(base).parts[:-1]:
        if part.startswith("="):  # continuation of an over-long component
            fields[key] += part[1:]
        else:
            key, _, value = part.partition("=")
            assert key not in fields
            fields[key] = value
    attempt = path.name.removeprefix("attempt=").removesuffix(".log")
    return (
        unquote(fields["dag_id"], errors="strict"),
        unquote(fields["run_id"], errors="strict"),
        unquote(fields["task_id"], errors="strict"),
        int(fields.get("map_index", "-1")),
        int(attempt),
    )


def test_run_ids_that_differ_only_in_slash_get_their_own_files(tmp_path: Path) -> None:
    slash = try_log_path(tmp_path, "d", "coll/a", "t", 1)
    underscore = try_log_path(tmp_path, "d", "coll_a", "t", 1)
    assert slash != underscore
    assert underscore == tmp_path / "dag_id=d/run_id=coll_a/task_id=t/attempt=1.log"  # ordinary: unchanged
    assert slash == tmp_path / "dag_id=d/run_id=coll%2Fa/task_id=t/attempt=1.log"
    assert try_log_path(tmp_path, "d", "coll%2Fa", "t", 1) != slash  # "%" is encoded too


_ids = st.text(
    st.characters(codec="utf-8") | st.sampled_from("/\\%=._-:+ \0"), min_size=1, max_size=300
) | st.sampled_from([".", "..", "a/b", "a_b", "a%2Fb", "=", "%"])


@given(
    key=st.tuples(_ids, _ids, _ids, st.integers(-1, 10_000), st.integers(1, 10_000)),
    other=st.tuples(_ids, _ids, _ids, st.integers(-1, 10_000), st.integers(1, 10_000)),
)
def test_log_paths_are_injective(key: tuple[str, str, str, int, int], other: tuple[str, str, str, int, int]) -> None:
    base = Path("/logs")
    path = try_log_path(base, *key[:3], try_number=key[4], map_index=key[3])
    assert _decode(base, path) == key  # the path determines the try: no two tries share a file
    assert path.is_relative_to(base)
    for part in path.relative_to(base).parts:
        assert part not in (".", "..") and "\0" not in part
        assert len(part.encode()) <= MAX_COMPONENT_BYTES
    if other != key:
        assert try_log_path(base, *other[:3], try_number=other[4], map_index=other[3]) != path
