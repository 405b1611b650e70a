"""``…/logs/{try_number}``: a try's log by byte offset, secrets masked, and followed live over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.executors import make_executor
from headrace.scheduler import loop
from headrace.scheduler.runs import trigger_dag
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD, ClientAs, FinishedRun
from tests.integration.helpers import FAST, write_dag
from tests.waiting import wait_until

SECRET = "s3cr3t-pa55word"  # printed by the demo DAG's extract task


def test_log_by_offset_with_secrets_masked(
    api: TestClient, client_as: ClientAs, anon: TestClient, finished_run: FinishedRun
) -> None:
    viewer = client_as("viewer")
    url = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances/extract/logs/1"
    plain = viewer.get(url).json()
    assert f"extracting with {SECRET}" in plain["content"]  # not a known secret yet
    assert plain["finished"] is True and plain["offset"] == 0
    assert plain["next_offset"] == len(plain["content"].encode())

    assert api.post("/api/v1/variables", json={"key": "db_password", "value": SECRET}).status_code == 200
    masked = viewer.get(url).json()
    assert SECRET not in masked["content"] and "extracting with ***" in masked["content"]
    assert masked["next_offset"] == plain["next_offset"]  # offsets count the file's bytes, not the masked text

    tail = viewer.get(url, params={"offset": plain["next_offset"]}).json()
    assert tail == {
        "content": "",
        "offset": plain["next_offset"],
        "next_offset": plain["next_offset"],
        "finished": True,
    }
    middle = viewer.get(url, params={"offset": 10}).json()
    assert middle["offset"] == 10 and middle["next_offset"] == plain["next_offset"]
    assert middle["content"] == plain["content"].encode()[10:].decode().replace(SECRET, "***")  # from byte 10, masked

    text = viewer.get(url, headers={"Accept": "text/plain"})  # a finished try: the stream ends at once
    assert text.headers["content-type"].startswith("text/plain")
    assert "extracting with ***" in text.text and SECRET not in text.text
    assert viewer.get(url, params={"stream": "true"}).text == text.text

    failed = viewer.get(url.replace("extract", "explode")).json()
    assert "RuntimeError: boom" in failed["content"]
    assert viewer.get(url[:-1] + "2").status_code == 404
    assert viewer.get(url[:-1] + "0").status_code == 422
    assert viewer.get(url, params={"offset": -1}).status_code == 422
    assert viewer.get(url.replace("extract", "after")).status_code == 404  # never ran: no try 1
    assert viewer.get(url.replace(finished_run.run_id, "nope")).json()["error"] == "DagRunNotFound"
    assert anon.get(url).status_code == 401


def test_offset_past_the_end_is_an_empty_chunk_on_the_real_server(finished_run: FinishedRun, db: Database) -> None:
    """Any offset the API accepts (up to 2**62) past the log's end is an empty chunk, never a 500."""
    with db.session() as session:
        user = create_user(session, "offset-viewer", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
    server = start_in_thread(finished_run.settings, db, host="127.0.0.1", port=0)
    url = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances/extract/logs/1"
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for offset in (2**62, 2**40, 10**9):
                chunk = client.get(url, params={"offset": offset})
                assert chunk.status_code == 200, (offset, chunk.text)
                assert chunk.json() == {"content": "", "offset": offset, "next_offset": offset, "finished": True}
                streamed = client.get(url, params={"offset": offset, "stream": "true"})
                assert streamed.status_code == 200 and streamed.text == ""
            beyond = client.get(url, params={"offset": 2**62 + 1})
            assert beyond.status_code == 422 and beyond.headers["x-content-type-options"] == "nosniff"
    finally:
        server.stop()


def test_connection_passwords_are_masked_too(api: TestClient, finished_run: FinishedRun) -> None:
    conn = {"conn_id": "warehouse", "conn_type": "postgres", "password": SECRET}
    assert api.post("/api/v1/connections", json=conn).status_code == 200
    url = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances/extract/logs/1"
    assert "extracting with ***" in api.get(url).json()["content"]


FOLLOW_DAG = """
    import os, time
    from headrace import DAG
    from headrace.operators import PythonOperator

    GATE = {gate!r}

    def talk():
        print("first line", flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.05)
        print("second line", flush=True)

    with DAG("follow"):
        PythonOperator(task_id="talk", python_callable=talk)
"""


@pytest.fixture
def scheduler(settings: Settings, db: Database) -> Iterator[Settings]:
    """A real scheduler (LocalExecutor) running in a thread until the test ends."""
    fast = settings.with_overrides(FAST)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(fast, db, make_executor(fast)), kwargs={"stop": stop}, daemon=True)
    thread.start()
    yield fast
    stop.set()
    thread.join(30)


def _try_row(db: Database) -> TaskTry | None:
    with db.session() as session:
        return session.scalars(select(TaskTry).where(TaskTry.task_id == "talk")).first()


def test_stream_follows_a_running_try_until_it_ends(scheduler: Settings, db: Database, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    write_dag(scheduler, "follow.py", FOLLOW_DAG.format(gate=str(gate)))
    assert DagProcessor(scheduler, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        user = create_user(session, "watcher", PASSWORD, "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
        run_id = trigger_dag(session, "follow", now=datetime.now(UTC)).run_id
    wait_until(lambda: _try_row(db) is not None, 60, "the try to start")

    server = start_in_thread(scheduler, db, host="127.0.0.1", port=0)
    try:
        url = f"{server.url}/api/v1/dags/follow/dagRuns/{run_id}/taskInstances/talk/logs/1"
        received = ""
        ended_before_first_line: bool | None = None
        with httpx.stream(
            "GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"}, timeout=60
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_text():
                received += chunk
                if "first line" in received and ended_before_first_line is None:
                    row = _try_row(db)
                    assert row is not None
                    ended_before_first_line = row.end_date is not None
                    gate.touch()  # only now may the task print its second line and end
        assert ended_before_first_line is False  # the first line arrived while the try was still running
        assert received.index("first line") < received.index("second line")
        row = _try_row(db)
        assert row is not None and row.end_date is not None  # the stream ended because the try had ended
    finally:
        server.stop()
