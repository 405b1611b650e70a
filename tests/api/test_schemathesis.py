"""Property-based API tests: schemathesis generates requests from the OpenAPI document; none may get a 5xx.

Every operation under ``/api/v1`` is called with an admin's Bearer token and
generated path, query and body values (valid and invalid: NUL characters,
huge integers, odd datetimes, wrong types). The only check is
``not_a_server_error``: a bad request must be a 4xx with a JSON body, never a
crash. The DB holds one parsed DAG and one DAG run so lookups can succeed.
SQLite only, to keep the run short (PostgreSQL-specific limits, such as NUL
characters, are handled in the request models and the tests of each resource).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import User
from headrace.scheduler.runs import trigger_dag
from tests.api.conftest import PASSWORD


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """SQLite only for this module (overrides the SQLite + PostgreSQL parametrized fixture)."""
    path = tmp_path / "headrace.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def api_schema(app: FastAPI, db: Database, demo_dag: Settings, api: TestClient) -> schemathesis.schemas.BaseSchema:
    """The app's OpenAPI document (REST API only; read with an admin's token, it needs a login), with a DAG
    ``demo`` and a run ``r1`` in the DB."""
    with db.session() as session:
        trigger_dag(session, "demo", run_id="r1", now=datetime.now(UTC))
    return schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json", app, headers={"Authorization": api.headers["authorization"]}
    )


@pytest.fixture
def admin_token(db: Database) -> Callable[[], str]:
    """Makes a Bearer token of an admin; one per request, as a generated ``DELETE /auth/tokens/{id}`` may
    revoke an earlier one."""
    with db.session() as session:
        user_id = create_user(session, "fuzzer", PASSWORD, "admin", now=datetime.now(UTC)).id

    def make() -> str:
        with db.session() as session:
            user = session.get(User, user_id)
            assert user is not None
            return create_token(session, user, "schemathesis", now=datetime.now(UTC))[0]

    return make


schema = (
    schemathesis.pytest.from_fixture("api_schema").exclude(
        path_regex="^/(health|ui/)"
    )  # the REST API only (/health answers 503 when no scheduler runs)
)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case, admin_token: Callable[[], str]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token()}"}, checks=[not_a_server_error])
