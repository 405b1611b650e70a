"""Capped try logs: a task printing far more than ``logging.max_try_log_bytes`` leaves a log of about that size,
its head and tail kept and the dropped byte count said; the try is unaffected and the API serves the file.

Real supervisor and task process (both databases), real HTTP server for the reader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.logs.capped import NOTE_RESERVE, CappedLog
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD
from tests.supervisor.tryrows import make_try, run_supervisor, ti_row, try_row, write_dag

MIB = 1024 * 1024

LOUD = """
def loud():
    line = "x" * 99
    for i in range(200_000):  # 20 MB of numbered lines
        print(f"{i:08d} {line}")
    print("last line of the task")

with DAG("loud") as dag:
    PythonOperator(task_id="loud", python_callable=loud)
"""


def test_a_20_mb_print_ends_in_a_1_mib_log(db: Database, settings: Settings, tmp_path: Path) -> None:
    capped = settings.with_overrides({"logging": {"max_try_log_bytes": MIB}})
    request = make_try(db, write_dag(tmp_path / "dags", LOUD), "loud", "loud")
    assert run_supervisor(capped, request) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None and (row.state, row.end_reason, row.exit_code) == ("success", "success", 0)
    assert ti_row(db, request.ti_id).state == "success"
    path = Path(row.log_path)
    size = path.stat().st_size
    assert MIB // 2 < size <= MIB + NOTE_RESERVE
    assert not path.with_name(path.name + ".tail").exists()
    text = path.read_text()
    lines = text.splitlines()
    assert any(line.endswith("00000000 " + "x" * 99) for line in lines[:5])  # the head
    dropped = [line for line in lines if "bytes dropped" in line]
    assert len(dropped) == 1
    n = int(re.search(r"(\d+) bytes dropped", dropped[0]).group(1))  # type: ignore[union-attr]
    assert n > 18 * MIB
    tail = lines[lines.index(dropped[0]) + 1 :]
    assert re.fullmatch(r"\d{8} x{99}", tail[0])  # the tail starts on a whole line
    assert "last line of the task" in text[-4096:] and "try 1 ended: success" in lines[-1]
    numbers = [int(line[:8]) for line in lines if re.fullmatch(r"\d{8} x{99}", line)]
    assert numbers == sorted(numbers) and numbers[-1] == 199_999  # head then tail, nothing out of order

    with db.session() as session:
        user = create_user(session, "reader", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
    server = start_in_thread(capped, db, host="127.0.0.1", port=0)
    try:
        url = f"{server.url}/api/v1/dags/loud/dagRuns/manual__1/taskInstances/loud/logs/1"
        headers = {"Authorization": f"Bearer {token}"}
        served, offset = "", 0
        while True:
            chunk = httpx.get(url, params={"offset": offset}, headers=headers, timeout=30).json()
            served += chunk["content"]
            offset = chunk["next_offset"]
            if chunk["finished"]:
                break
        assert served == text and offset == size
        streamed = httpx.get(url, headers={**headers, "Accept": "text/plain"}, timeout=30).text
        assert streamed == text
    finally:
        server.stop()


def test_output_under_the_cap_is_kept_whole(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "attempt=1.log", 256 * 1024)
    fd = log.pipe()
    child = subprocess.Popen([sys.executable, "-c", "print('a' * 1000)\nprint('b')"], stdout=fd)
    os.close(fd)
    child.wait(30)
    log.line("supervisor", "done")
    log.close()
    text = (tmp_path / "attempt=1.log").read_text()
    assert text.startswith("a" * 1000 + "\nb\n") and text.endswith("done\n")
    assert "dropped" not in text and "held back" not in text


def test_ring_keeps_exactly_the_last_bytes(tmp_path: Path) -> None:
    """Many small and large writes through the ring (wrapping at odd places): the tail is the output's end."""
    log = CappedLog(tmp_path / "attempt=1.log", 64 * 1024)
    data = b"".join(b"%07d\n" % i for i in range(50_000))  # 400 000 bytes
    pos = 0
    for size in [1, 7, 4096, 100_000, 13, 65_537] * 10:
        log.write(data[pos : pos + size])
        pos += size
    log.write(data[pos:])
    log.close()
    text = (tmp_path / "attempt=1.log").read_bytes()
    note = re.search(rb"(\d+) bytes dropped.*the last (\d+) bytes follow\n", text)
    assert note is not None
    kept = text[note.end() :]
    assert data.endswith(kept) and kept.startswith(b"00") and len(kept) > 20_000
    head = text[: text.index(b"[")]
    assert data.startswith(head)
    assert len(head) + int(note.group(1)) + len(kept) == len(data)  # nothing lost unaccounted
    assert int(note.group(2)) == len(kept)
    assert len(text) <= 64 * 1024 + NOTE_RESERVE


def test_the_tail_is_in_the_file_before_the_try_is_recorded(tmp_path: Path) -> None:
    """``flush_tail`` (called before the outcome is written) puts the held-back end in the file at once;
    later lines follow it, and ``close`` adds nothing twice."""
    path = tmp_path / "attempt=1.log"
    log = CappedLog(path, 64 * 1024)
    data = b"".join(b"%07d\n" % i for i in range(20_000))  # 160 000 bytes: the head fills, the rest is held back
    log.write(data)
    assert not path.read_bytes().endswith(data[-8:])  # held back while the try runs
    log.flush_tail()
    flushed = path.read_bytes()
    assert flushed.endswith(data[-8000:]) and b"bytes dropped" in flushed  # what a follower reads now
    assert not log.tail_path.exists()
    log.line("supervisor", "try 1 ended: success")
    log.close()
    text = path.read_bytes()
    assert text.startswith(flushed) and text.count(b"bytes dropped") == 1
    assert text.rstrip().endswith(b"try 1 ended: success")


def test_a_polled_pipe_is_read_by_its_caller_and_drained_to_its_end(tmp_path: Path) -> None:
    """No thread reads a polled pipe: the caller reads it when it is readable (the supervisor's wait loop);
    ``drain`` reads the rest until end of file, and stops at its timeout when a process still holds it."""
    path = tmp_path / "attempt=1.log"
    log = CappedLog(path, 4 * MIB)
    read_fd, write_fd = log.polled_pipe()
    assert log.polled_fds() == [read_fd]
    os.write(write_fd, b"first\n")
    assert log.read_pipe(read_fd) and path.read_bytes() == b"first\n"
    assert log.read_pipe(read_fd)  # nothing there now: no block, still open
    child = subprocess.Popen([sys.executable, "-c", "print('a' * 300000)"], stdout=write_fd)  # > the pipe's 64 KiB
    os.close(write_fd)
    child.wait(30)  # the enlarged pipe took it all while nobody read
    log.drain()
    assert log.polled_fds() == []
    assert path.read_bytes() == b"first\n" + b"a" * 300_000 + b"\n"
    read_fd, write_fd = log.polled_pipe()  # a write end still open (a process that outlived the try)
    os.write(write_fd, b"late\n")
    log.drain(timeout=0.2)
    assert log.polled_fds() == [] and path.read_bytes().endswith(b"late\n")
    os.close(write_fd)
    log.close()


def test_a_write_after_close_goes_nowhere_not_to_the_next_file_on_its_descriptor(tmp_path: Path) -> None:
    """A thread still writing while the supervisor closes the log must not write into whatever file reuses the
    closed descriptor number."""
    log = CappedLog(tmp_path / "attempt=1.log", 1 << 20)
    log.write(b"before\n")
    closed_fd = log.fd
    log.close()
    other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        assert other == closed_fd  # the lowest free number: the log's own, reused
        log.write(b"late\n")
        log.line("supervisor", "late line")
        log.close()  # twice: nothing happens (no second os.close of a number now someone else's)
        os.write(other, b"mine\n")
    finally:
        os.close(other)
    assert (tmp_path / "other").read_bytes() == b"mine\n"
    assert (tmp_path / "attempt=1.log").read_bytes() == b"before\n"
