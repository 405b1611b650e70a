"""Fixtures for fault tests: a private PostgreSQL cluster per test worker, and DBs on it.

Fault tests stop, restart and kill PostgreSQL, so they never use the shared
server of ``tests/conftest.py`` (127.0.0.1:5432): each pytest(-xdist) worker
gets its own cluster (``pg_cluster``, made once per session on a free port)
and each test a fresh, migrated database on it (``private_pg_url``).

``fault_db_url`` / ``fault_settings`` / ``fault_db`` mirror ``db_url`` /
``settings`` / ``db`` of ``tests/conftest.py``: tests that take them run once
on SQLite (``[sqlite]``) and once on the private cluster (``[postgresql]``);
``fault_backend`` says which, ``fault_pg`` gives the cluster (None on SQLite).

``pg_fault_lock``: tests that stop or restart PostgreSQL (or hold the database
away otherwise) take it, so that two of them never run at once on this machine
— not in two xdist workers, not in two test sessions: their timing-sensitive
outages would overlap on the same CPUs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from tests.faults.pgcluster import PG_FAULT_LOCK, PgCluster


@pytest.fixture
def pg_fault_lock() -> Iterator[None]:
    """Hold an exclusive ``flock`` on :data:`PG_FAULT_LOCK` for the test (waiting for any other holder)."""
    with PG_FAULT_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """This worker's private PostgreSQL cluster, started; destroyed at the end of the session.

    Its directory is a fresh ``/tmp/headrace-pg-<worker>-*`` (pytest's ``tmp_path``
    is not reachable by the ``postgres`` OS user the server runs as under root).
    Tests may stop or restart it; ``private_pg_url`` starts it again.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base_dir = Path(tempfile.mkdtemp(prefix=f"headrace-pg-{worker}-", dir="/tmp"))
    try:
        cluster = PgCluster.create(base_dir)
        cluster.start()
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def private_pg_url(pg_cluster: PgCluster) -> str:
    """URL of a fresh database ``t_<8 hex>`` on the private cluster, migrated like ``pg_url``.

    Starts the cluster first if an earlier test left it stopped. The database is
    not dropped (the whole cluster goes at the end of the session).
    """
    pg_cluster.start()
    url = pg_cluster.create_database(f"t_{uuid.uuid4().hex[:8]}")
    database = Database(url)
    migrate(database)
    database.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def fault_backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgresql": the backend of this run of the test (the parametrization of ``fault_db_url``)."""
    return str(request.param)


@pytest.fixture
def fault_pg(request: pytest.FixtureRequest, fault_backend: str) -> PgCluster | None:
    """The private cluster under ``fault_db_url`` on PostgreSQL; None on SQLite."""
    if fault_backend == "postgresql":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        return cluster
    return None


@pytest.fixture
def fault_db_url(request: pytest.FixtureRequest, fault_backend: str, tmp_path: Path) -> str:
    """URL of a fresh migrated metadata DB: a SQLite file in ``tmp_path`` (copied from the
    session's migrated template, as ``db_url`` does) or ``private_pg_url``."""
    if fault_backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "headrace.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("private_pg_url")
    return url


@pytest.fixture
def fault_settings(tmp_path: Path, fault_db_url: str) -> Settings:
    """Like ``settings``: HEADRACE_HOME in tmp_path, the database at ``fault_db_url``."""
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    return load_settings(
        {
            "HEADRACE_HOME": str(home),
            "HEADRACE__DATABASE__URL": fault_db_url,
            "HEADRACE__METRICS__SCHEDULER_PORT": "0",  # no shared fixed port between test workers
            "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",  # as the settings fixture (tests/conftest.py)
        }
    )


@pytest.fixture
def fault_db(fault_db_url: str) -> Iterator[Database]:
    """A ``Database`` on ``fault_db_url``; disposed at the end of the test."""
    database = Database(fault_db_url)
    yield database
    database.dispose()
