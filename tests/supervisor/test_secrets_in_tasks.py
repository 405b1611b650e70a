"""Variables and connections read by real tasks (scheduler + LocalExecutor + supervisors), masked in their logs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from headrace import Connection, Variable
from headrace.authoring.secrets import SecretsUnavailable
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.secrets_store import set_connection, set_variable
from tests.integration.helpers import FAST, parse_and_trigger, run_scheduler_until_done, ti_states, write_dag

PASSWORD = "hunter2-Wh4le!"
TOKEN = "tok-5ecr3t-777"
CLIENT_SECRET = "cs-abcdef-123"

DAG_FILE = """
    import logging, sys
    from headrace import DAG, Connection, Variable
    from headrace.operators import BashOperator, PythonOperator

    log = logging.getLogger("my.task")

    def leak_everything():
        conn = Connection.get("warehouse")
        print("password:", conn.password)
        log.info("logging the password %s and the uri %s", conn.password, conn.get_uri())
        sys.stdout.write("split " + conn.password[:5])  # one secret over two writes, one line
        sys.stdout.write(conn.password[5:] + " done\\n")
        print("extra:", conn.extra)
        print("token:", Variable.get("api_token"))
        print("plain:", Variable.get("plain"), Variable.get("cfg", deserialize_json=True)["n"])
        print("default:", Variable.get("absent", default="fallback"))
        print("no newline at the end", conn.password, end="")
        return conn.host

    def fail_with_it():
        raise RuntimeError("cannot log in with " + Connection.get("warehouse").password)

    def missing():
        Variable.get("nope")

    with DAG("secrets"):
        PythonOperator(task_id="leak", python_callable=leak_everything)
        BashOperator(task_id="bash", bash_command=(
            "echo pw={{ conn.warehouse.password }} host={{ conn.warehouse.host }} "
            "v={{ var.value.plain }} n={{ var.json.cfg.n }} t={{ var.value.api_token }}"))
        PythonOperator(task_id="fails", python_callable=fail_with_it)
        PythonOperator(task_id="missing", python_callable=missing)
"""


def _logs(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {t.task_id: Path(t.log_path).read_text() for t in session.scalars(select(TaskTry))}


def _all_rows_text(db: Database, exclude_xcom: bool = False) -> str:
    tables = ("task_try", "task_instance", "dag_run", "variable", "connection", "import_error")
    tables += () if exclude_xcom else ("xcom",)
    with db.engine.connect() as conn:
        return "\n".join(str(tuple(r)) for t in tables for r in conn.execute(text(f"SELECT * FROM {t}")))


def test_tasks_read_secrets_and_logs_mask_them(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides(FAST)
    enc = Encryptor.from_settings(settings)
    with db.session() as session:
        set_connection(
            session,
            enc,
            Connection(
                conn_id="warehouse",
                conn_type="postgres",
                host="db.example",
                port=5432,
                login="etl",
                password=PASSWORD,
                extra={"region": "eu-west", "client_secret": CLIENT_SECRET},
            ),
        )
        set_variable(session, enc, "api_token", TOKEN)
        set_variable(session, enc, "plain", "visible-value")
        set_variable(session, enc, "cfg", '{"n": 42}')
    write_dag(settings, "secrets.py", DAG_FILE)
    parse_and_trigger(settings, db, "secrets")
    run_scheduler_until_done(settings, db)

    assert ti_states(db) == {"leak": "success", "bash": "success", "fails": "failed", "missing": "failed"}
    logs = _logs(db)
    for task_id, log in logs.items():
        for secret in (PASSWORD, TOKEN, CLIENT_SECRET, PASSWORD[5:] + " done"):
            assert secret not in log, f"{secret!r} leaked into the log of {task_id}"
    leak = logs["leak"]
    assert "password: ***\n" in leak
    assert "logging the password *** and the uri postgres://etl:***@db.example:5432" in leak
    assert "split *** done\n" in leak
    assert "'client_secret': '***'" in leak and "'region': 'eu-west'" in leak
    assert "token: ***\n" in leak
    assert "plain: visible-value 42\n" in leak  # a variable whose key is not sensitive is shown
    assert "default: fallback\n" in leak
    assert "no newline at the end ***" in leak  # the held-back last line is written at the end
    assert "pw=*** host=db.example v=visible-value n=42 t=***" in logs["bash"]
    assert "RuntimeError: cannot log in with ***" in logs["fails"]
    assert "VariableNotFound: no variable with key 'nope'" in logs["missing"]
    stored = _all_rows_text(db, exclude_xcom=True)
    assert "cannot log in with ***" in stored  # the try's error column, masked
    for secret in (PASSWORD, TOKEN, CLIENT_SECRET):
        assert secret not in stored
    # XComs are data: a value the task returns is stored as it is, even a secret (as in Airflow).
    # BashOperator returns its last output line, so here the XCom holds what the command echoed.
    with db.engine.connect() as conn:
        assert PASSWORD in conn.execute(text("SELECT value FROM xcom WHERE task_id = 'bash'")).scalar_one()


def test_outside_a_task_secrets_are_a_clear_error(settings: Settings, db: Database) -> None:
    with pytest.raises(SecretsUnavailable, match="only available inside a running task"):
        Variable.get("anything")
    with pytest.raises(SecretsUnavailable, match=r"Connection.get\('c'\)"):
        Connection.get("c")
    write_dag(
        settings,
        "top_level.py",
        """
        from headrace import DAG, Variable
        from headrace.operators import EmptyOperator
        with DAG(Variable.get("dag_name")):
            EmptyOperator(task_id="t")
    """,
    )
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 1
    assert "only available inside a running task" in _all_rows_text(db)
