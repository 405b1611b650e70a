"""The headrace-native twin of ../airflow_dags/sql_queries.py.

The test harness stores the connections ``compat_postgres`` and ``compat_mysql`` and the variable
``compat_sql_table`` (a table name of the run's own) before the run.
"""

from __future__ import annotations

from datetime import datetime

from headrace import DAG, TriggerRule, Variable, task
from headrace.hooks import BaseHook, MySqlHook, PostgresHook
from headrace.operators import SQLExecuteQueryOperator

TABLE = "{{ var.value.compat_sql_table }}"

with DAG(dag_id="compat_sql", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["compat"]):
    create = SQLExecuteQueryOperator(
        task_id="create",
        conn_id="compat_postgres",
        sql=[f"DROP TABLE IF EXISTS {TABLE}", f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, name VARCHAR(50))"],
    )
    insert = SQLExecuteQueryOperator(
        task_id="insert",
        conn_id="compat_postgres",
        sql=f"INSERT INTO {TABLE} (id, name) VALUES (%(id)s, %(name)s)",
        parameters={"id": 1, "name": "{{ dag.dag_id }}"},
    )
    rows = SQLExecuteQueryOperator(
        task_id="select", conn_id="compat_postgres", sql=f"SELECT id, name FROM {TABLE} ORDER BY id"
    )

    @task
    def copy_to_mysql(ti=None):
        selected = ti.xcom_pull(task_ids="select")
        assert [tuple(r) for r in selected] == [(1, "compat_sql")], selected
        assert BaseHook.get_connection("compat_mysql").conn_type == "mysql"
        table = Variable.get("compat_sql_table")
        mysql = MySqlHook(mysql_conn_id="compat_mysql")
        mysql.run([f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50))"])
        mysql.insert_rows(table, selected, target_fields=["id", "name"])
        copied = mysql.get_records(f"SELECT id, name FROM {table}")
        mysql.run(f"DROP TABLE {table}")
        return len(copied)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def cleanup(copied):
        hook = PostgresHook(postgres_conn_id="compat_postgres")
        table = Variable.get("compat_sql_table")
        assert hook.get_pandas_df(f"SELECT name FROM {table}")["name"].tolist() == ["compat_sql"]
        hook.run(f"DROP TABLE {table}")
        assert copied == 1, copied

    copied = copy_to_mysql()
    create >> insert >> rows >> copied
    cleanup(copied)
