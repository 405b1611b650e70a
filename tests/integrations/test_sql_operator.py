"""SQLExecuteQueryOperator and the SQL hooks through the scheduler, on the real PostgreSQL, MariaDB and SQLite.

A DAG file parsed by the DAG processor, triggered and run by a real scheduler loop with the local executor:
each try forks a task process that reads its connections through its supervisor.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace import DAG
from headrace.authoring.xcom import deserialize_xcom
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, XCom
from headrace.exceptions import DagDefinitionError
from headrace.logs.files import try_log_path
from headrace.operators import SQLExecuteQueryOperator
from tests.hooks.conftest import MARIADB, POSTGRES, drop_table, sqlite_connection, store_connections
from tests.observability.conftest import run_dag, write_dag

DAG_FILE = """
from datetime import datetime

from headrace import DAG, task
from headrace.hooks import BaseHook, DbApiHook
from headrace.operators import SQLExecuteQueryOperator

TABLE = "{table}"
TARGETS = [("pg", "{pg}", "%s"), ("my", "{my}", "%s"), ("lite", "{lite}", "?")]

with DAG(dag_id="sql_ops", schedule=None, start_date=datetime(2024, 1, 1), params={{"table": TABLE}}):
    for name, conn_id, p in TARGETS:
        create = SQLExecuteQueryOperator(
            task_id=f"create_{{name}}",
            conn_id=conn_id,
            sql=[
                f"CREATE TABLE {{TABLE}} (id INTEGER PRIMARY KEY, name VARCHAR(50))",
                "INSERT INTO {{{{ params.table }}}} (id, name) VALUES (1, '{{{{ dag.dag_id }}}}')",
            ],
        )
        insert = SQLExecuteQueryOperator(
            task_id=f"insert_{{name}}",
            conn_id="{{{{ 'CONN' }}}}".replace("CONN", conn_id),  # conn_id is templated too
            sql=f"INSERT INTO {{TABLE}} (id, name) VALUES ({{p}}, {{p}})",
            parameters=[2, "{{{{ task.task_id }}}}"],
            autocommit=True,
        )
        rows = SQLExecuteQueryOperator(
            task_id=f"rows_{{name}}", conn_id=conn_id, sql="select.sql", show_return_value_in_logs=True
        )
        both = SQLExecuteQueryOperator(
            task_id=f"both_{{name}}",
            conn_id=conn_id,
            sql=f"SELECT COUNT(*) FROM {{TABLE}}; -- two statements\\nSELECT MAX(id) FROM {{TABLE}};",
            split_statements=True,
            return_last=False,
        )

        @task(task_id=f"check_{{name}}")
        def check(conn_id, name, ti=None):
            assert ti.xcom_pull(task_ids=f"rows_{{name}}") == [(1, "sql_ops"), (2, f"insert_{{name}}")]
            assert ti.xcom_pull(task_ids=f"both_{{name}}") == [[(2,)], [(2,)]]  # rows are tuples, as Airflow 3's XCom keeps them
            hook = BaseHook.get_hook(conn_id)
            assert isinstance(hook, DbApiHook)
            frame = hook.get_pandas_df(f"SELECT id, name FROM {{TABLE}} ORDER BY id")
            assert frame["name"].tolist() == ["sql_ops", f"insert_{{name}}"], frame
            hook.insert_rows(TABLE, [(3, "from a hook")])
            return hook.get_first(f"SELECT name FROM {{TABLE}} WHERE id = 3")[0]

        create >> insert >> rows >> both >> check(conn_id, name)

    SQLExecuteQueryOperator(task_id="broken", conn_id="{lite}", sql="SELECT * FROM no_such_table")
    SQLExecuteQueryOperator(
        task_id="which_db",
        conn_id="{pg}",
        database="postgres",  # overrides the connection's database (test)
        hook_params={{"log_sql": False}},
        sql="SELECT current_database()",
    )
    SQLExecuteQueryOperator(task_id="no_push", conn_id="{lite}", sql="SELECT 1", do_xcom_push=False)
"""


def test_sql_operator_through_the_scheduler(settings: Settings, db: Database, tmp_path: Path) -> None:
    table = f"hr_{uuid.uuid4().hex[:12]}"
    lite = sqlite_connection(tmp_path / "target.db")
    store_connections(settings, db, POSTGRES, MARIADB, lite)
    write_dag(
        settings, "sql_ops", DAG_FILE.format(table=table, pg=POSTGRES.conn_id, my=MARIADB.conn_id, lite=lite.conn_id)
    )
    (settings.dags_folder / "select.sql").write_text("SELECT id, name FROM {{ params.table }} ORDER BY id\n")
    try:
        run = run_dag(settings, db, "sql_ops")
    finally:
        for conn in (POSTGRES, MARIADB):
            drop_table(conn, table)
    with db.read_session() as session:
        states = {t: str(s) for t, s in session.execute(select(TaskInstance.task_id, TaskInstance.state))}
        xcoms = {
            (x.task_id, x.key): deserialize_xcom(x.value)
            for x in session.scalars(select(XCom).where(XCom.dag_run_id == run.id))
        }
    assert states.pop("broken") == "failed"
    assert set(states.values()) == {"success"}, states
    assert len(states) == 17
    assert ("no_push", "return_value") not in xcoms
    assert xcoms[("which_db", "return_value")] == [("postgres",)]
    for name in ("pg", "my", "lite"):
        assert xcoms[(f"check_{name}", "return_value")] == "from a hook"
        assert xcoms[(f"create_{name}", "return_value")] == [None, None]  # a list of statements: one result each
        assert (f"insert_{name}", "return_value") not in xcoms  # an INSERT returns no rows: None, no XCom
    log = try_log_path(settings.base_log_folder, "sql_ops", run.run_id, "rows_pg", 1).read_text()
    assert "Operator output is: [[(1, 'sql_ops'), (2, 'insert_pg')]]" in log
    broken = try_log_path(settings.base_log_folder, "sql_ops", run.run_id, "broken", 1).read_text()
    assert "no_such_table" in broken


def test_bad_arguments_are_parse_errors_naming_the_task() -> None:
    with DAG(dag_id="bad", schedule=None, start_date=datetime(2024, 1, 1)):
        with pytest.raises(DagDefinitionError, match="SQLExecuteQueryOperator 'q': conn_id is required"):
            SQLExecuteQueryOperator(task_id="q", sql="SELECT 1")
        with pytest.raises(DagDefinitionError, match="SQLExecuteQueryOperator 'r': sql must be a non-empty string"):
            SQLExecuteQueryOperator(task_id="r", conn_id="c", sql="")
        with pytest.raises(DagDefinitionError, match="invalid arguments were passed to SQLExecuteQueryOperator"):
            SQLExecuteQueryOperator(task_id="s", conn_id="c", sql="SELECT 1", no_such_argument=1)
