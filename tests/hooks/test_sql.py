"""The SQL hooks against the real PostgreSQL, MariaDB and SQLite, connections read from the metadata DB."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from headrace.authoring.secrets import Connection, ConnectionNotFound, SecretsUnavailable
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.hooks import BaseHook, DbApiHook, MySqlHook, PostgresHook, SqliteHook, fetch_one_handler

from .conftest import MARIADB, POSTGRES, Target, sqlite_connection, store_connections


def make_table(hook: DbApiHook, table: str) -> None:
    hook.run(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50))")


def count(hook: DbApiHook, table: str) -> int:
    return int(hook.get_first(f"SELECT COUNT(*) FROM {table}")[0])


@pytest.mark.usefixtures("secrets")
def test_run_returns_what_airflow_returns(settings: Settings, db: Database, target: Target) -> None:
    store_connections(settings, db, target.conn)
    hook = BaseHook.get_hook(target.conn.conn_id)
    assert type(hook) is {"postgres": PostgresHook, "mariadb": MySqlHook, "sqlite": SqliteHook}[target.name]
    assert isinstance(hook, DbApiHook)
    make_table(hook, target.table)
    p = target.placeholder
    hook.run(f"INSERT INTO {target.table} (id, name) VALUES ({p}, {p})", parameters=[1, "ada"])
    hook.run(f"INSERT INTO {target.table} (id, name) VALUES ({p}, {p})", parameters=(2, "grace"))
    select = f"SELECT id, name FROM {target.table} ORDER BY id"
    assert hook.get_records(select) == [(1, "ada"), (2, "grace")]
    assert hook.get_first(select) == (1, "ada")
    assert hook.get_records(f"SELECT name FROM {target.table} WHERE id = {p}", parameters=[2]) == [("grace",)]
    # a string is one statement: its result; a list: one result per statement
    assert hook.run([select, f"SELECT COUNT(*) FROM {target.table}"], handler=fetch_one_handler) == [(1, "ada"), (2,)]
    two = f"SELECT id FROM {target.table} WHERE id = 1; SELECT name FROM {target.table} WHERE id = 2;"
    assert hook.run(two, split_statements=True, handler=fetch_one_handler) == ("grace",)
    assert hook.run(two, split_statements=True, return_last=False, handler=fetch_one_handler) == [(1,), ("grace",)]
    assert [d[0][0].lower() for d in hook.descriptions if d] == ["id", "name"]
    assert hook.run(select) is None  # no handler, no result
    with pytest.raises(ValueError, match="empty"):
        hook.run("   ")


@pytest.mark.usefixtures("secrets")
def test_autocommit_false_is_one_transaction_true_commits_each(
    settings: Settings, db: Database, target: Target
) -> None:
    store_connections(settings, db, target.conn)
    hook = DbApiHook(target.conn.conn_id)
    make_table(hook, target.table)
    statements = [f"INSERT INTO {target.table} (id, name) VALUES (1, 'a')", "INSERT INTO no_such_table VALUES (1)"]
    with pytest.raises(Exception, match="no_such_table"):
        hook.run(statements)
    assert count(hook, target.table) == 0  # the first insert was rolled back with the failed statement
    with pytest.raises(Exception, match="no_such_table"):
        hook.run(statements, autocommit=True)
    assert count(hook, target.table) == 1  # committed on its own


@pytest.mark.usefixtures("secrets")
def test_insert_rows_chunks_and_replace(settings: Settings, db: Database, target: Target) -> None:
    store_connections(settings, db, target.conn)
    hook = BaseHook.get_hook(target.conn.conn_id)
    assert isinstance(hook, DbApiHook)
    make_table(hook, target.table)
    rows = [(i, f"n{i}") for i in range(1, 8)]
    assert hook.insert_rows(target.table, rows[:4], target_fields=["id", "name"], commit_every=3) == 4
    assert hook.insert_rows(target.table, iter(rows[4:]), commit_every=2, executemany=True) == 3
    assert count(hook, target.table) == 7
    kwargs = {"replace_index": "id"} if target.name == "postgres" else {}
    hook.insert_rows(target.table, [(2, "two"), (9, "nine")], target_fields=["id", "name"], replace=True, **kwargs)
    assert hook.get_records(f"SELECT name FROM {target.table} WHERE id IN (2, 9) ORDER BY id") == [
        ("two",),
        ("nine",),
    ]
    with pytest.raises(Exception, match="(?i)duplicate|unique"):  # a duplicate key without replace: the driver's error
        hook.insert_rows(target.table, [(1, "again")])


@pytest.mark.usefixtures("secrets")
def test_pandas_engine_and_uri(settings: Settings, db: Database, target: Target) -> None:
    store_connections(settings, db, target.conn)
    hook = DbApiHook(conn_id=target.conn.conn_id)
    make_table(hook, target.table)
    hook.insert_rows(target.table, [(1, "x"), (2, "y")])
    p = target.placeholder
    frame = hook.get_pandas_df(f"SELECT id, name FROM {target.table} WHERE id >= {p} ORDER BY id", parameters=[1])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "name"]
    assert frame["name"].tolist() == ["x", "y"]
    assert hook.get_df(f"SELECT id FROM {target.table}")["id"].sum() == 3
    with pytest.raises(ValueError, match="polars"):
        hook.get_df("SELECT 1", df_type="polars")
    engine = hook.get_sqlalchemy_engine()
    try:
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT COUNT(*) FROM {target.table}")).scalar_one() == 2
    finally:
        engine.dispose()
    assert hook.get_uri().startswith(
        {"postgres": "postgresql+psycopg://", "mariadb": "mysql+pymysql://"}.get(target.name, "sqlite:///")
    )
    assert hook.test_connection() == (True, "Connection successfully tested")


@pytest.mark.usefixtures("secrets")
def test_hook_constructors_take_airflow_names(settings: Settings, db: Database, tmp_path: Path) -> None:
    other = sqlite_connection(tmp_path / "other.db", conn_id="sqlite_default")
    store_connections(settings, db, POSTGRES, MARIADB, other)
    pg = PostgresHook(postgres_conn_id="postgres_test", database="postgres")
    assert pg.get_first("SELECT current_database()") == ("postgres",)
    assert MySqlHook(mysql_conn_id="mariadb_test").get_first("SELECT DATABASE()") == ("test",)
    assert SqliteHook().get_conn_id() == "sqlite_default"
    assert SqliteHook().get_first("SELECT 41 + 1") == (42,)
    assert BaseHook.get_connection("postgres_test").port == 5432
    with pytest.raises(ConnectionNotFound):
        BaseHook.get_connection("nope")
    with pytest.raises(TypeError, match="postgres_conn_id"):
        MySqlHook(postgres_conn_id="x")


@pytest.mark.usefixtures("secrets")
def test_a_type_without_a_driver_is_a_clear_error(settings: Settings, db: Database) -> None:
    store_connections(settings, db, Connection(conn_id="web", conn_type="http", host="example.org"))
    with pytest.raises(ValueError, match="connection 'web': headrace has no hook for conn_type 'http'"):
        BaseHook.get_hook("web")
    with pytest.raises(ValueError, match="conn_type 'http' has no SQL driver"):
        DbApiHook("web").get_uri()


def test_connections_are_not_read_outside_a_task() -> None:
    with pytest.raises(SecretsUnavailable):
        BaseHook.get_connection("postgres_test")
