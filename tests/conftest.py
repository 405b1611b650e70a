"""Shared fixtures: every test that takes ``db`` runs on SQLite and on PostgreSQL.

PostgreSQL: one fresh database per test session (``headrace_test_<pid>``) on the
server at ``HEADRACE_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432``),
migrated once and emptied between tests (DELETE, see ``_pg_empty_sql``). SQLite: a fresh file per test,
copied from a template migrated once.
"""

from __future__ import annotations

import compileall
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

import headrace
from headrace.api import users
from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import Base
from tests.cli.warm import WarmCli
from tests.pgbouncer import through_pgbouncer
from tests.s3 import S3Server, start_s3_server


def pytest_configure(config: pytest.Config) -> None:
    """Write headrace's bytecode (``__pycache__``) once, before any test starts an interpreter.

    The suite starts hundreds of interpreters that import headrace (fork servers, schedulers, triggerers,
    the sequential executor's tries, ``python -m headrace``). Where bytecode is not written on import
    (``PYTHONDONTWRITEBYTECODE``, as on this machine) each of them would compile the modules it imports
    from source again: ~0.1 s of CPU a start. Up-to-date files are skipped; the test processes themselves
    (pytest, which rewrites asserts) are not concerned.
    """
    compileall.compile_dir(Path(headrace.__file__).parent, quiet=1)


@pytest.fixture(autouse=True, scope="session")
def one_argon2_hash_per_password() -> Iterator[None]:
    """``hash_password`` hashes each distinct password once per test process and hands out that hash again.

    An argon2id hash costs ~0.3 s of CPU and ~64 MiB by design, and most API and UI tests make users with
    the same few passwords. The hash handed out is still a real argon2id hash of that password (with its
    own salt, shared by the users of that password), which logins check with the real, unshortened
    ``verify``; short passwords are still refused (an error is not kept). Logins, the timing equaliser and
    rehashing use the hasher directly and are untouched.
    """
    real = users.hash_password
    made: dict[str, str] = {}

    def hash_once(password: str) -> str:
        if password not in made:
            made[password] = real(password)
        return made[password]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "hash_password", hash_once)
        yield


@pytest.fixture(scope="session")
def warm_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmCli]:
    """This test process's warm ``headrace`` (:mod:`tests.cli.warm`): ``warm_cli.run(args, env, timeout)`` runs a
    command in a forked child, as ``subprocess.run([python, "-m", "headrace", *args], ...)`` would."""
    warm = WarmCli(tmp_path_factory.mktemp("warm-cli"))
    yield warm
    warm.close()


PG_SERVER = os.environ.get("HEADRACE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _pg_admin_dsn() -> str:
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session (dropped at the end)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"headrace_test_{os.getpid()}_{worker}"
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_SERVER}/{name}"
    database = Database(url)
    migrate(database)
    database.dispose()
    yield url
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    database = Database(f"sqlite:///{path}")
    migrate(database)
    database.dispose()  # the last connection to close checkpoints and removes the WAL file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _pg_empty_sql() -> str:
    """SQL that empties every table of the session's PostgreSQL database but ``default_pool`` (128 slots),
    and restarts their sequences at 1, as a ``TRUNCATE … RESTART IDENTITY CASCADE`` would.

    DELETE, not TRUNCATE: the tables hold a test's few rows, and TRUNCATE makes new files for each of the
    tables and their indexes (0.2–0.8 s per test on a loaded machine, against 0.03 s). Foreign-key
    triggers are off for the transaction (``session_replication_role = replica``, the server's superuser
    ``postgres``), so the order of the DELETEs does not matter.
    """
    deletes = [f'DELETE FROM "{t.name}"' for t in Base.metadata.sorted_tables if t.name != "pool"]
    return ";\n".join(
        [
            "SET LOCAL session_replication_role = replica",
            *deletes,
            "DELETE FROM pool WHERE name <> 'default_pool'",
            "UPDATE pool SET slots = 128 WHERE name = 'default_pool'",
            # the sequences owned by columns of the emptied tables (as RESTART IDENTITY): pool has none
            "SELECT setval(s.oid, 1, false) FROM pg_class s"
            " JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass"
            " AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
            " JOIN pg_class t ON t.oid = d.refobjid WHERE s.relkind = 'S' AND t.relname <> 'pool'",
        ]
    )


_PG_EMPTY = _pg_empty_sql()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty, migrated metadata DB (with default_pool); one test's alone.

    ``postgresql-pgbouncer`` (a test parametrized with ``tests.pgbouncer.WITH_PGBOUNCER``): the PostgreSQL
    one, reached through PgBouncer.
    """
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "headrace.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("pg_url")
    database = Database(url)
    with database.engine.begin() as conn:
        conn.execute(text(_PG_EMPTY))
    database.dispose()
    yield through_pgbouncer(url) if request.param == "postgresql-pgbouncer" else url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A ``Database`` on a fresh metadata DB (SQLite and PostgreSQL)."""
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings with HEADRACE_HOME in tmp_path and the test's database.

    New DAGs start unpaused here (``core.dags_are_paused_at_creation = false``): most tests parse a DAG
    and expect the scheduler to run it at once. The default (True, Airflow's) has its own tests
    (tests/dagfiles/test_paused_at_creation.py), which override this back.
    """
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    return load_settings(
        {
            "HEADRACE_HOME": str(home),
            "HEADRACE__DATABASE__URL": db_url,
            "HEADRACE__METRICS__SCHEDULER_PORT": "0",  # no shared fixed port between test workers
            "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        }
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (moto, server mode) on 127.0.0.1 for the whole session."""
    server = start_s3_server()
    yield server
    server.stop()
