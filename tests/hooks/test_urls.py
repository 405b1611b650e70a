"""Connections to SQLAlchemy URLs (no database needed)."""

from __future__ import annotations

import pytest

from headrace.authoring.secrets import Connection
from headrace.hooks.urls import ignored_extras, sqlalchemy_url


def test_each_supported_type_gets_its_driver() -> None:
    pg = Connection(
        conn_id="pg",
        conn_type="postgres",
        host="db.example",
        port=5433,
        login="me",
        password="p@ss/word",
        schema="sales",
        extra={"sslmode": "require", "cursor": "dictcursor"},
    )
    url = sqlalchemy_url(pg)
    assert url.render_as_string(hide_password=False) == (
        "postgresql+psycopg://me:p%40ss%2Fword@db.example:5433/sales?sslmode=require"
    )
    assert ignored_extras(pg) == ["cursor"]
    assert sqlalchemy_url(pg, database="other").database == "other"
    my = Connection(conn_id="m", conn_type="mariadb", host="h", schema="d", extra={"charset": "utf8mb4"})
    assert str(sqlalchemy_url(my)) == "mysql+pymysql://h/d?charset=utf8mb4"
    assert ignored_extras(my) == []
    lite = Connection(conn_id="s", conn_type="sqlite", host="/var/data/x.db")
    assert str(sqlalchemy_url(lite)) == "sqlite:////var/data/x.db"
    assert str(sqlalchemy_url(Connection(conn_id="s", conn_type="sqlite"))) == "sqlite://"


def test_any_dialect_through_sqlalchemy_scheme() -> None:
    conn = Connection(
        conn_id="ms",
        conn_type="mssql",
        host="h",
        login="u",
        schema="db",
        extra={"sqlalchemy_scheme": "mssql+pyodbc", "sqlalchemy_query": {"driver": "ODBC Driver 18"}},
    )
    assert str(sqlalchemy_url(conn)) == "mssql+pyodbc://u@h/db?driver=ODBC+Driver+18"
    assert ignored_extras(conn) == []


def test_unknown_type_names_the_connection() -> None:
    with pytest.raises(ValueError, match=r"connection 'x': conn_type 'oracle' has no SQL driver.*sqlalchemy_scheme"):
        sqlalchemy_url(Connection(conn_id="x", conn_type="oracle"))
    bad = Connection(conn_id="y", conn_type="postgres", extra={"sqlalchemy_query": "a=b"})
    with pytest.raises(ValueError, match="connection 'y': extra sqlalchemy_query must be a JSON object"):
        sqlalchemy_url(bad)
