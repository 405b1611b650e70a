"""Remote try logs (logging.remote_base_log_folder) through the real scheduler, supervisors and a real S3 server.

The S3 server is moto in server mode on loopback (tests/s3.py); supervisors reach it through a stored
connection (logging.remote_log_conn_id) whose extra names its endpoint_url.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.api.users import create_token, create_user
from headrace.authoring.secrets import Connection
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry
from headrace.executors import make_executor
from headrace.logs.remote import LogShipper, log_key
from headrace.scheduler import loop
from headrace.storage.objects import ObjectStore, open_store
from headrace.webapp import create_app
from tests.api.conftest import PASSWORD
from tests.cli.warm import WarmCli
from tests.integration.helpers import FAST, parse_and_trigger, run_scheduler_until_done, write_dag
from tests.s3 import KEY as S3_KEY
from tests.s3 import SECRET as S3_SECRET
from tests.s3 import S3Server, add_s3_connection, start_s3_server
from tests.waiting import wait_until

INTERVAL = 0.2
"""logging.remote_log_interval in these tests (seconds)."""

GATED_DAG = """
    import os, time
    from headrace import DAG
    from headrace.operators import PythonOperator

    def talk():
        print("first line", flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists({gate!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        print("second line", flush=True)

    with DAG("remote_logs"):
        PythonOperator(task_id="talk", python_callable=talk)
"""


def _remote(settings: Settings, url: str, **more: object) -> Settings:
    return settings.with_overrides(
        {
            **FAST,
            "logging": {
                "remote_logging": True,
                "remote_base_log_folder": url,
                "remote_log_interval": INTERVAL,
                **more,
            },
        }
    )


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.make_bucket(f"logs-{uuid.uuid4().hex[:12]}")


@contextmanager
def _run_scheduler(settings: Settings, db: Database) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(
        target=loop.run, args=(settings, db, make_executor(settings)), kwargs={"stop": stop}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def _try(db: Database, task_id: str = "talk") -> TaskTry | None:
    with db.session() as session:
        return session.scalars(select(TaskTry).where(TaskTry.task_id == task_id)).first()


def _state(db: Database, task_id: str = "talk") -> str | None:
    with db.session() as session:
        return session.scalar(select(TaskInstance.state).where(TaskInstance.task_id == task_id))


def test_log_is_shipped_while_running_and_read_back_after_the_local_file_is_gone(
    settings: Settings, db: Database, s3_server: S3Server, bucket: str, tmp_path: Path, warm_cli: WarmCli
) -> None:
    conn_id = add_s3_connection(settings, db, s3_server)
    remote = _remote(settings, f"s3://{bucket}/logs", remote_log_conn_id=conn_id)
    gate = tmp_path / "gate"
    write_dag(remote, "remote_logs.py", GATED_DAG.format(gate=str(gate)))
    run_id = parse_and_trigger(remote, db, "remote_logs")
    key = "logs/" + log_key("remote_logs", run_id, "talk", 1)

    with _run_scheduler(remote, db):
        shipped = wait_until(
            lambda: (lambda data: data if data and b"first line" in data else None)(s3_server.read(bucket, key)),
            60,
            "the running try's first line in the bucket",
        )
        tt = _try(db)
        assert tt is not None and tt.end_date is None  # read after the copy: it was shipped while the try ran
        assert b"try 1 ended" not in shipped  # an interval upload, not the final one
        gate.touch()
        wait_until(lambda: _state(db) == "success", 60, "the try to succeed")
    final = s3_server.read(bucket, key) or b""
    tt = _try(db)
    assert tt is not None
    local = Path(tt.log_path)
    assert final == local.read_bytes()  # the final upload holds the whole log, the supervisor's last lines too
    assert b"second line" in final and b"try 1 ended: success" in final

    local.unlink()  # the worker's disk is gone: the API and the CLI read the bucket
    api = _admin_client(remote, db)
    url = f"/api/v1/dags/remote_logs/dagRuns/{run_id}/taskInstances/talk/logs/1"
    chunk = api.get(url).json()
    assert chunk["content"] == final.decode() and chunk["finished"] is True
    assert "second line" in api.get(url, params={"stream": "true"}).text

    printed = _cli(warm_cli, remote, "tasks", "logs", "remote_logs", "talk", run_id, "--try", "1")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == final.decode()
    assert not local.exists()


def _admin_client(settings: Settings, db: Database) -> TestClient:
    with db.session() as session:
        user = create_user(session, f"admin-{uuid.uuid4().hex[:6]}", PASSWORD, "admin", now=datetime.now(UTC))
        token, _ = create_token(session, user, "test", now=datetime.now(UTC))
    return TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"})


def _cli(warm_cli: WarmCli, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``headrace *args`` with ``settings``, in a child of the warm headrace (tests/cli/warm.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(settings.to_env())
    return warm_cli.run(list(args), env, timeout=120)


TICKING_DAG = """
    import os, time
    from headrace import DAG
    from headrace.operators import PythonOperator

    def tick():
        n = 0
        deadline = time.monotonic() + 60
        while not os.path.exists({gate!r}) and time.monotonic() < deadline:
            print(f"tick {{n}}", flush=True)
            n += 1
            time.sleep(0.02)
        print("after the gate", flush=True)

    with DAG("ticking"):
        PythonOperator(task_id="tick", python_callable=tick)
"""

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
"""No SQL of its own beyond the first test's: one database keeps the suite's time down."""


@SQLITE_ONLY
def test_a_supervisor_killed_mid_try_leaves_what_it_had_shipped(
    settings: Settings, db: Database, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    conn_id = add_s3_connection(settings, db, s3_server)
    remote = _remote(settings, f"s3://{bucket}", remote_log_conn_id=conn_id)
    write_dag(remote, "ticking.py", TICKING_DAG.format(gate=str(tmp_path / "gate")))
    run_id = parse_and_trigger(remote, db, "ticking")
    key = log_key("ticking", run_id, "tick", 1)

    with _run_scheduler(remote, db):
        wait_until(lambda: b"tick 20\n" in (s3_server.read(bucket, key) or b""), 60, "tick 20 shipped")
        tt = _try(db, "tick")
        assert tt is not None and tt.supervisor_pid is not None
        os.kill(tt.supervisor_pid, signal.SIGKILL)  # no final upload: what the intervals shipped is what stays
        wait_until(lambda: not _alive(tt.pid), 30, "the task process to die with its supervisor")
        remote_log = s3_server.read(bucket, key) or b""
        local_log = Path(tt.log_path).read_bytes()
    assert b"tick 20\n" in remote_log
    assert local_log.startswith(remote_log)  # the remote copy is the log as it was at the last interval
    assert b"try 1 ended" not in remote_log  # no final upload: its supervisor was killed


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@SQLITE_ONLY
def test_an_upload_failure_does_not_fail_the_try_and_is_retried(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    server = start_s3_server()  # its own: this test stops it
    try:
        bucket = server.make_bucket("outage")
        conn_id = add_s3_connection(settings, db, server, "s3_outage")
        remote = _remote(settings, f"s3://{bucket}/logs", remote_log_conn_id=conn_id)
        gate = tmp_path / "gate"
        write_dag(remote, "ticking.py", TICKING_DAG.format(gate=str(gate)))  # its log grows all the time
        run_id = parse_and_trigger(remote, db, "ticking")
        key = "logs/" + log_key("ticking", run_id, "tick", 1)
        with _run_scheduler(remote, db):
            wait_until(lambda: b"tick 1\n" in (server.read(bucket, key) or b""), 60, "the first ticks shipped")
            tt = _try(db, "tick")
            assert tt is not None
            server.stop()
            local = Path(tt.log_path)
            wait_until(lambda: b"cannot ship this log" in local.read_bytes(), 60, "the failed upload said in the log")
            server.start()  # same port, same buckets
            wait_until(lambda: b"works again" in (server.read(bucket, key) or b""), 60, "the upload retried")
            gate.touch()
            wait_until(lambda: _state(db, "tick") == "success", 60, "the try to succeed")
        final = server.read(bucket, key) or b""
        assert b"cannot ship this log" in final and b"after the gate" in final
        assert final == local.read_bytes()
    finally:
        server.stop()


@SQLITE_ONLY
def test_file_urls_and_delete_local_logs(settings: Settings, db: Database, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    remote = _remote(settings, f"file://{shared}", delete_local_logs=True)
    gate = tmp_path / "gate"
    gate.touch()  # the task does not wait
    write_dag(remote, "remote_logs.py", GATED_DAG.format(gate=str(gate)))
    run_id = parse_and_trigger(remote, db, "remote_logs")
    run_scheduler_until_done(remote, db)
    tt = _try(db)
    assert tt is not None and tt.state == "success"
    assert not Path(tt.log_path).exists()  # removed once the final upload succeeded
    copy = shared / log_key("remote_logs", run_id, "talk", 1)
    text = copy.read_text()
    assert "second line" in text and "try 1 ended: success" in text
    assert not list(shared.rglob("*.tmp"))  # uploads to a file system are atomic: no leftovers
    url = f"/api/v1/dags/remote_logs/dagRuns/{run_id}/taskInstances/talk/logs/1"
    assert _admin_client(remote, db).get(url).json()["content"] == text


@SQLITE_ONLY
def test_a_local_stub_does_not_hide_the_remote_log(
    settings: Settings, db: Database, tmp_path: Path, warm_cli: WarmCli
) -> None:
    """Readers take the remote log over a local file shorter than it (a stub: e.g. a zombie's callback output
    the scheduler appended here), and over any local file when the try ran on another host."""
    shared = tmp_path / "shared"
    remote = _remote(settings, f"file://{shared}")
    gate = tmp_path / "gate"
    gate.touch()
    write_dag(remote, "remote_logs.py", GATED_DAG.format(gate=str(gate)))
    run_id = parse_and_trigger(remote, db, "remote_logs")
    run_scheduler_until_done(remote, db)
    tt = _try(db)
    assert tt is not None and tt.state == "success"
    full = (shared / log_key("remote_logs", run_id, "talk", 1)).read_text()
    assert "second line" in full
    local = Path(tt.log_path)
    api = _admin_client(remote, db)
    url = f"/api/v1/dags/remote_logs/dagRuns/{run_id}/taskInstances/talk/logs/1"

    local.write_text("a callback's line\n")  # shorter than the remote log
    assert api.get(url).json()["content"] == full
    printed = _cli(warm_cli, remote, "tasks", "logs", "remote_logs", "talk", run_id, "--try", "1")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == full

    local.write_text("x" * (len(full) + 100) + "\n")  # longer, but the try ran on another host: not its log
    assert api.get(url).json()["content"] != full  # this host's: the local file is read
    with db.session() as session:
        row = session.get(TaskTry, tt.id)
        assert row is not None
        row.hostname = "another-host"
    assert api.get(url).json()["content"] == full


def _s3_store(server: S3Server, bucket: str) -> ObjectStore:
    conn = Connection(
        conn_id="s3_test",
        conn_type="aws",
        login=S3_KEY,
        password=S3_SECRET,
        extra={"endpoint_url": server.endpoint_url, "region_name": "us-east-1"},
    )
    return open_store(f"s3://{bucket}/logs", "logging.remote_base_log_folder", conn)


@pytest.mark.parametrize(
    ("remote_before", "local_before", "expected_front"),
    [
        # delete_local_logs: the first part was shipped and removed; the triggerer recreated the file with lines
        # that outnumber it
        (b"first part\n", b"the triggerer's lines, longer than the first part\n", b"first part\n"),
        # a second resume on the host of the first: the file continues what the remote log ends with
        (b"first part\ntrigger 1\nresumed 1\n", b"trigger 1\nresumed 1\ntrigger 2\n", b"first part\n"),
        # same host, nothing deleted: the file holds the whole log
        (b"first part\n", b"first part\ntrigger 1\n", b""),
    ],
    ids=["stub-recreated", "continues-remote", "whole-local"],
)
def test_a_resumed_try_keeps_the_remote_first_part_in_front(
    s3_server: S3Server, bucket: str, tmp_path: Path, remote_before: bytes, local_before: bytes, expected_front: bytes
) -> None:
    store = _s3_store(s3_server, bucket)
    key = log_key("d", "r", "t", 1)
    store.put_bytes(key, remote_before)
    local = tmp_path / "attempt=1.log"
    local.write_bytes(local_before)
    shipper = LogShipper(store, local, key, 60.0, lambda _m, _l: None, resumed=True, opened_size=len(local_before))
    with local.open("ab") as f:
        f.write(b"resumed line\n")
    assert shipper.finish(timeout=10)
    assert s3_server.read(bucket, "logs/" + key) == expected_front + local_before + b"resumed line\n"


@SQLITE_ONLY
def test_remote_logging_false_ignores_the_folder_and_says_so(
    settings: Settings, db: Database, tmp_path: Path, warm_cli: WarmCli
) -> None:
    """Airflow's switch: with logging.remote_logging false (its default) the folder is neither shipped to nor read
    from, and every command warns that it is set for nothing."""
    shared = tmp_path / "shared"
    off = _remote(settings, f"file://{shared}").with_overrides({"logging": {"remote_logging": False}})
    gate = tmp_path / "gate"
    gate.touch()
    write_dag(off, "remote_logs.py", GATED_DAG.format(gate=str(gate)))
    run_id = parse_and_trigger(off, db, "remote_logs")
    run_scheduler_until_done(off, db)
    tt = _try(db)
    assert tt is not None and tt.state == "success" and Path(tt.log_path).exists()
    assert not shared.exists()  # nothing shipped
    printed = _cli(warm_cli, off, "tasks", "logs", "remote_logs", "talk", run_id, "--try", "1")
    assert printed.returncode == 0, printed.stderr
    said = " ".join(printed.stderr.split())  # as the terminal wrapped it
    assert "warning: logging.remote_base_log_folder is set but logging.remote_logging is false" in said, said
    assert "second line" in printed.stdout
    on = _cli(
        warm_cli, _remote(settings, f"file://{shared}"), "tasks", "logs", "remote_logs", "talk", run_id, "--try", "1"
    )
    assert "remote_logging is false" not in on.stderr
