"""``headrace variables …`` and ``headrace connections …`` through the real command, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text

from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.scheduler.start import make_processor
from headrace.secrets_store import get_connection, get_variable
from tests.cli.conftest import Cli

PASSWORD = "pa55-w0rd/x"


def test_variables_commands(cli: Cli, db: Database, settings: Settings) -> None:
    assert cli("variables", "set", "greeting", "hello", "-d", "a greeting").code == 0
    assert cli("variables", "set", "db_password", "very-secret-1").code == 0
    assert cli("variables", "set", "cfg", '{"n": 1}', "--json").code == 0
    bad = cli("variables", "set", "cfg2", "{not json", "--json")
    assert bad.code == 1 and "not valid JSON" in bad.err

    got = cli("variables", "get", "db_password")
    assert (got.code, got.out) == (0, "very-secret-1\n")
    missing = cli("variables", "get", "nope")
    assert missing.code == 1 and "no variable with key 'nope'" in missing.err
    assert cli("variables", "get", "nope", "--default", "d").out == "d\n"

    listed = cli("variables", "list")
    assert listed.code == 0
    assert "very-secret-1" not in listed.out and "***" in listed.out
    assert "hello" in listed.out and "a greeting" in listed.out

    with db.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT key, value FROM variable")).all())
    assert set(stored) == {"greeting", "db_password", "cfg"}
    assert "very-secret-1" not in stored["db_password"] and "hello" not in stored["greeting"]
    with db.read_session() as session:
        assert get_variable(session, Encryptor.from_settings(settings), "db_password") == "very-secret-1"

    assert cli("variables", "delete", "greeting").code == 0
    again = cli("variables", "delete", "greeting")
    assert again.code == 1 and "no variable with key 'greeting'" in again.err


def test_connections_commands(cli: Cli, db: Database, settings: Settings) -> None:
    added = cli(
        "connections",
        "add",
        "wh",
        "--conn-type",
        "postgres",
        "--conn-host",
        "db.example",
        "--conn-port",
        "5432",
        "--conn-login",
        "etl",
        "--conn-password",
        PASSWORD,
        "--conn-extra",
        '{"sslmode": "require", "api_key": "k-12345"}',
    )
    assert added.code == 0, added.err
    uri = cli("connections", "add", "api", "--conn-uri", "https://bot:t0ken-abc@api.example/v1?timeout=30")
    assert uri.code == 0, uri.err
    both = cli("connections", "add", "x", "--conn-uri", "http://h", "--conn-host", "other")
    assert both.code == 1 and "either --conn-uri" in both.err

    shown = json.loads(cli("connections", "get", "wh").out)
    assert shown["password"] == "***" and shown["extra"] == {"sslmode": "require", "api_key": "***"}
    assert (shown["host"], shown["port"], shown["login"]) == ("db.example", 5432, "etl")
    revealed = json.loads(cli("connections", "get", "wh", "--reveal").out)
    assert revealed["password"] == PASSWORD and revealed["extra"]["api_key"] == "k-12345"

    listed = cli("connections", "list")
    assert listed.code == 0
    for secret in (PASSWORD, "k-12345", "t0ken-abc"):
        assert secret not in listed.out
    assert "api.example" in listed.out and "db.example" in listed.out

    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT conn_id, password, extra FROM connection")).all()
    for secret in (PASSWORD, "k-12345", "t0ken-abc", "sslmode"):
        assert secret not in str(rows)
    with db.read_session() as session:
        api = get_connection(session, Encryptor.from_settings(settings), "api")
    assert api is not None
    assert (api.conn_type, api.login, api.password, api.host, api.schema, api.extra) == (
        "https",
        "bot",
        "t0ken-abc",
        "api.example",
        "v1",
        {"timeout": "30"},
    )

    assert cli("connections", "delete", "api").code == 0
    gone = cli("connections", "get", "api")
    assert gone.code == 1 and "no connection with conn_id 'api'" in gone.err


SECRET_DAG = """
from headrace import DAG, Variable
from headrace.operators import PythonOperator

with DAG("cli_vars", schedule=None):
    PythonOperator(task_id="show", python_callable=lambda: print("greeting is", Variable.get("greeting")))
"""


def test_tasks_test_reads_variables_from_the_database(cli: Cli, db: Database, settings: Settings) -> None:
    (settings.dags_folder / "cli_vars.py").write_text(SECRET_DAG)
    make_processor(settings, db).refresh(datetime.now(UTC))
    assert cli("variables", "set", "greeting", "bonjour").code == 0
    r = cli("tasks", "test", "cli_vars", "show")
    assert r.code == 0, r.out + r.err
    assert "greeting is bonjour" in r.out
