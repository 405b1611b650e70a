"""Helpers for observability tests: DAG files, a real scheduler run, an API token, loopback receivers."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.observability.listener import Listener
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.start import make_processor
from headrace.testing import run_scheduler_until


def write_dag(settings: Settings, name: str, source: str) -> None:
    """Write DAG file ``<name>.py`` into the test's dags folder."""
    (settings.dags_folder / f"{name}.py").write_text(textwrap.dedent(source))


def run_dag(
    settings: Settings,
    db: Database,
    dag_id: str,
    *,
    listeners: list[Listener] | None = None,
    until: Callable[[], bool] | None = None,
    each_loop: Callable[[datetime], None] | None = None,
    timeout: float = 120.0,
) -> DagRun:
    """Parse the dags folder, trigger ``dag_id`` and run a real scheduler (local executor) until the run
    ends and ``until()`` (if given) holds; return the run. Fails the test after ``timeout`` seconds."""
    processor = make_processor(settings, db)
    processor.refresh(datetime.now(UTC))
    for path in settings.dags_folder.glob("*.py"):  # changed: the loop parses them again (parse events)
        path.write_text(path.read_text() + "\n# parsed again by the scheduler loop\n")
    with db.session() as session:
        run_pk = trigger_dag(session, dag_id, now=datetime.now(UTC)).id
    final: list[DagRun] = []

    def ended() -> bool:
        with db.session() as session:
            run = session.get(DagRun, run_pk)
            assert run is not None
            session.expunge(run)
        if run.state in ("success", "failed") and (until is None or until()):
            final.append(run)
            return True
        return False

    run_scheduler_until(
        settings, db, ended, processor=processor, listeners=listeners or [], each_loop=each_loop, timeout=timeout
    )
    assert final, f"run of {dag_id} did not end (or the condition did not hold) within {timeout} s"
    return final[0]


def runs_of(db: Database, dag_id: str) -> list[DagRun]:
    with db.session() as session:
        rows = list(session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id)))
        session.expunge_all()
    return rows


@pytest.fixture
def token_for(db: Database) -> Callable[[str], str]:
    """``token_for(role)``: an API token of a new user with that role."""
    made: list[str] = []

    def make(role: str) -> str:
        with db.session() as session:
            user = create_user(session, f"{role}-{len(made)}", "a-long-test-password", role, now=datetime.now(UTC))
            token, _ = create_token(session, user, "test", now=datetime.now(UTC))
        made.append(token)
        return token

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 — aiosmtpd hook
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    """A real SMTP server (aiosmtpd) on loopback: ``(port, received envelopes)``."""
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, box.messages
    finally:
        controller.stop()


class WebhookReceiver:
    """An http.server on loopback collecting JSON POST bodies; answers ``statuses`` in turn (then 200)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server hook
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(json.loads(data))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()
