"""API fixtures: the application on the test's database, and clients logged in with each role.

``client_as("viewer")`` returns a ``TestClient`` (httpx, in process, no socket)
that sends a Bearer API token of a fresh user with that role; ``api`` is the
admin's. ``anon`` has no credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headrace.api.app import create_app
from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.db.engine import Database

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
