"""API fixtures: the application on the test's database, and clients logged in with each role.

``client_as("viewer")`` returns a ``TestClient`` (httpx, in process, no socket)
that sends a Bearer API token of a fresh user with that role; ``api`` is the
admin's. ``anon`` has no credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.scheduler.runs import trigger_dag
from headrace.webapp import create_app, start_in_thread
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

PASSWORD = "correct horse battery"

ClientAs = Callable[[str], TestClient]


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    """The application on the test's settings and database."""
    return create_app(settings, db)


@pytest.fixture
def client_as(app: FastAPI, db: Database) -> Iterator[ClientAs]:
    """Factory: a client authenticated by an API token of a new user ``<role>`` with that role."""
    clients: list[TestClient] = []

    def make(role: str) -> TestClient:
        with db.session() as session:
            user = create_user(session, f"{role}-{len(clients)}", PASSWORD, role, now=datetime.now(UTC))
            token, _ = create_token(session, user, "test", now=datetime.now(UTC))
        client = TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=True)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def api(client_as: ClientAs) -> TestClient:
    """A client with the admin role."""
    return client_as("admin")


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    """A client without credentials."""
    with TestClient(app) as client:
        yield client


# --- REST resources: a DAG run that really ran (appended for tests/api/test_<resource>.py) ---------------------

DEMO_DAG = """
    from headrace import DAG
    from headrace.operators import BashOperator, PythonOperator

    def extract():
        print("extracting with s3cr3t-pa55word")
        return {"rows": 3, "when": "today"}

    def explode():
        raise RuntimeError("boom")

    with DAG("demo", tags=["api", "test"], description="API test DAG") as dag:
        e = PythonOperator(task_id="extract", python_callable=extract, retries=2)
        x = PythonOperator(task_id="explode", python_callable=explode)
        after = BashOperator(task_id="after", bash_command="echo after")
        ok = BashOperator(task_id="echo", bash_command="echo ok")
        e >> x >> after
        e >> ok
"""
"""DAG ``demo``: extract (XCom, prints a secret) → explode (fails) → after (upstream_failed); extract → echo."""


@dataclass(frozen=True)
class FinishedRun:
    """A run of DAG ``demo`` that ended (``failed``): extract/echo success, explode failed, after upstream_failed."""

    dag_id: str
    run_id: str
    settings: Settings


@pytest.fixture
def demo_dag(settings: Settings, db: Database) -> Settings:
    """DAG ``demo`` written to the dags folder and parsed; returns the fast scheduler settings."""
    fast = settings.with_overrides(FAST)
    write_dag(fast, "demo.py", DEMO_DAG)
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    return fast


@pytest.fixture
def finished_run(demo_dag: Settings, db: Database) -> FinishedRun:
    """A manual run of ``demo`` run to its end by a real scheduler (LocalExecutor, real supervisors)."""
    with db.session() as session:
        run_id = trigger_dag(session, "demo", now=datetime.now(UTC)).run_id
    run_scheduler_until_done(demo_dag, db)
    return FinishedRun("demo", run_id, demo_dag)


def session_client(app: FastAPI, db: Database, role: str) -> TestClient:
    """A client of ``app`` logged in through the session cookie (as a browser is), as a new user ``web-<role>``."""
    with db.session() as s:
        create_user(s, f"web-{role}", PASSWORD, role, now=datetime.now(UTC))
    client = TestClient(app)
    r = client.post("/api/v1/auth/login", json={"username": f"web-{role}", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


@contextmanager
def served_client(settings: Settings, db: Database, role: str, username: str) -> Iterator[httpx.Client]:
    """An httpx client of a real server (uvicorn on a free loopback port) with the API token of a new user.

    The server stops when the ``with`` block ends.
    """
    with db.session() as session:
        user = create_user(session, username, PASSWORD, role, now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
    server = start_in_thread(settings, db, host="127.0.0.1", port=0)
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            yield client
    finally:
        server.stop()
