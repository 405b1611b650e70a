"""headrace.secrets_store: variables and connections encrypted at rest, read back in plain text."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from headrace.authoring.secrets import (
    Connection,
    ConnectionNotFound,
    Variable,
    VariableNotFound,
    install_secrets_runtime,
)
from headrace.config import Settings, load_settings
from headrace.crypto import MASK, Encryptor, fernet_key
from headrace.db.engine import Database
from headrace.exceptions import InvalidRequest, SecretsError
from headrace.masking import mask_sensitive, masked_connection, masked_variable
from headrace.secrets_store import (
    DatabaseSecrets,
    delete_connection,
    delete_variable,
    get_connection,
    get_variable,
    list_connections,
    list_variables,
    parse_connection_uri,
    set_connection,
    set_variable,
)

PASSWORD = "s3cr3t-Pa55word!"


def _raw(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_variables_round_trip_encrypted(db: Database, settings: Settings) -> None:
    enc = Encryptor.from_settings(settings)
    with db.session() as session:
        set_variable(session, enc, "plain_key", "hello world", description="greeting")
        set_variable(session, enc, "api_token", "tok-123456")
    with db.session() as session:
        assert get_variable(session, enc, "plain_key") == "hello world"
        assert get_variable(session, enc, "missing") is None
        set_variable(session, enc, "plain_key", "replaced")  # description kept when not given
    with db.read_session() as session:
        rows = list_variables(session, enc)
    assert [(v.key, v.value, v.description) for v in rows] == [
        ("api_token", "tok-123456", None),
        ("plain_key", "replaced", "greeting"),
    ]
    stored = _raw(db, "SELECT key, value FROM variable ORDER BY key")
    assert all(value not in ("tok-123456", "replaced") and str(value).startswith("gAAAA") for _, value in stored)
    assert masked_variable("api_token", "tok-123456") == MASK
    assert masked_variable("plain_key", "replaced") == "replaced"
    with db.session() as session:
        delete_variable(session, "plain_key")
        with pytest.raises(VariableNotFound, match="plain_key"):
            delete_variable(session, "plain_key")
    with pytest.raises(InvalidRequest):
        with db.session() as session:
            set_variable(session, enc, " padded", "x")


def test_connections_round_trip_encrypted(db: Database, settings: Settings) -> None:
    enc = Encryptor.from_settings(settings)
    conn = Connection(
        conn_id="warehouse",
        conn_type="postgres",
        host="db.example",
        port=5433,
        login="etl",
        password=PASSWORD,
        schema="analytics",
        extra={"sslmode": "require", "auth": {"client_secret": "cs-98765"}},
        description="the warehouse",
    )
    with db.session() as session:
        set_connection(session, enc, conn)
        set_connection(session, enc, Connection(conn_id="bare", conn_type="http", host="example.org"))
    with db.read_session() as session:
        assert get_connection(session, enc, "warehouse") == conn
        assert get_connection(session, enc, "nope") is None
        assert [c.conn_id for c in list_connections(session, enc)] == ["bare", "warehouse"]
    password_col, extra_col, host_col = _raw(
        db, "SELECT password, extra, host FROM connection WHERE conn_id = 'warehouse'"
    )[0]
    assert PASSWORD not in str(password_col) and "cs-98765" not in str(extra_col) and "require" not in str(extra_col)
    assert host_col == "db.example"
    assert _raw(db, "SELECT password, extra FROM connection WHERE conn_id = 'bare'") == [(None, None)]
    shown = masked_connection(conn)
    assert shown["password"] == MASK
    assert shown["extra"] == {"sslmode": "require", "auth": {"client_secret": MASK}}
    assert PASSWORD not in repr(conn) and "cs-98765" not in repr(conn)
    with db.session() as session:
        delete_connection(session, "bare")
        with pytest.raises(ConnectionNotFound, match="bare"):
            delete_connection(session, "bare")


def test_a_wrong_key_is_a_clear_error(db: Database, settings: Settings) -> None:
    with db.session() as session:
        set_variable(session, Encryptor.from_settings(settings), "k", "v")
    with db.read_session() as session, pytest.raises(SecretsError, match="fernet_key"):
        get_variable(session, Encryptor(Fernet.generate_key()), "k")


def test_database_secrets_runtime(db: Database, settings: Settings) -> None:
    enc = Encryptor.from_settings(settings)
    with db.session() as session:
        set_variable(session, enc, "k", "v")
        set_connection(session, enc, Connection(conn_id="c", conn_type="http", password=PASSWORD))
    runtime = DatabaseSecrets(db, enc)
    assert runtime.get_variable("k") == "v" and runtime.get_variable("x") is None
    data = runtime.get_connection("c")
    assert data is not None and data["password"] == PASSWORD and runtime.get_connection("x") is None


def test_variable_get_takes_airflow_models_default_var(db: Database, settings: Settings) -> None:
    """``airflow.models.Variable.get(key, default_var=...)`` (Airflow 2's and 3's models spelling) works here."""
    enc = Encryptor.from_settings(settings)
    with db.session() as session:
        set_variable(session, enc, "cfg", '{"n": 2}')
    install_secrets_runtime(DatabaseSecrets(db, enc))
    try:
        assert Variable.get("cfg", default_var={"n": 0}, deserialize_json=True) == {"n": 2}
        assert Variable.get("absent", default_var={"n": 0}, deserialize_json=True) == {"n": 0}
        assert Variable.get("absent", default_var=None) is None
        with pytest.raises(TypeError, match="not both"):
            Variable.get("absent", "a", default_var="b")
        with pytest.raises(VariableNotFound):
            Variable.get("absent")
    finally:
        install_secrets_runtime(None)


def test_connection_uri_round_trip() -> None:
    conn = Connection(
        conn_id="x",
        conn_type="google_cloud",
        host="h.example",
        port=8080,
        login="me@corp",
        password="p@ss/w:rd",
        schema="db name",
        extra={"region": "eu", "retries": 3},
    )
    uri = conn.get_uri()
    assert uri.startswith("google-cloud://me%40corp:p%40ss%2Fw%3Ard@h.example:8080/db%20name?__extra__=")
    back = parse_connection_uri("x", uri)
    assert back == conn
    assert parse_connection_uri("y", "http://example.org").to_dict() == {
        "conn_id": "y",
        "conn_type": "http",
        "host": "example.org",
        "port": None,
        "login": None,
        "password": None,
        "schema": None,
        "extra": {},
        "description": None,
    }
    with pytest.raises(InvalidRequest, match="no type"):
        parse_connection_uri("z", "example.org/path")


def test_mask_sensitive_walks_nested_values() -> None:
    assert mask_sensitive({"a": 1, "token": "t", "nested": [{"password": "p", "user": "u"}], "none": None}) == {
        "a": 1,
        "token": MASK,
        "nested": [{"password": MASK, "user": "u"}],
        "none": None,
    }


def _read_key_at_barrier(home: Path, barrier: Barrier, out: Queue[bytes]) -> None:
    barrier.wait()
    out.put(fernet_key(load_settings({"HEADRACE_HOME": str(home)})))


def test_racing_processes_all_read_the_one_complete_key_file(tmp_path: Path) -> None:
    """Eight processes that need the key at the same moment, with no key file yet, all get one valid key:
    none reads the file while the first is still writing it (the CI failure: an empty key, "not a valid
    Fernet key", in one task's supervisor)."""
    context = multiprocessing.get_context("fork")
    for round_number in range(5):
        home = tmp_path / f"home{round_number}"
        barrier = context.Barrier(8)
        out: Queue[bytes] = context.Queue()
        workers = [context.Process(target=_read_key_at_barrier, args=(home, barrier, out)) for _ in range(8)]
        for worker in workers:
            worker.start()
        keys = {out.get(timeout=30) for _ in workers}
        for worker in workers:
            worker.join(timeout=30)
        assert len(keys) == 1, keys
        (key,) = keys
        Fernet(key)  # raises on anything but a whole key
        assert (home / "fernet.key").read_bytes().strip() == key
        assert [p.name for p in home.iterdir()] == ["fernet.key"]  # no temporary file left behind
