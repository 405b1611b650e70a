"""From a connection to a SQLAlchemy URL: which ``conn_type`` maps to which dialect and driver.

| ``conn_type``            | SQLAlchemy URL                                        | database from      |
|--------------------------|-------------------------------------------------------|--------------------|
| ``postgres``, ``postgresql`` | ``postgresql+psycopg://login:password@host:port/db`` | ``schema``         |
| ``mysql``, ``mariadb``   | ``mysql+pymysql://login:password@host:port/db``       | ``schema``         |
| ``sqlite``               | ``sqlite:///<path>``                                  | ``host`` (a file path; else ``schema``; empty: in memory) |
| any other, with the extra ``sqlalchemy_scheme`` | ``<sqlalchemy_scheme>://login:password@host:port/db`` | ``schema`` |

Extras passed on as URL query parameters: PostgreSQL's libpq options
(``sslmode``, ``sslcert``, ``sslkey``, ``sslrootcert``, ``sslcrl``,
``application_name``, ``connect_timeout``, ``options``, ``keepalives*``,
``target_session_attrs``), MySQL's ``charset`` and ``unix_socket``, and every
key of the extra ``sqlalchemy_query`` (a JSON object) verbatim. Any other extra
is reported by :func:`ignored_extras`, so the hook can warn by name.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from headrace.authoring.secrets import Connection

DRIVERS: dict[str, str] = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}
"""``conn_type`` → SQLAlchemy ``drivername``."""

_QUERY_EXTRAS: dict[str, frozenset[str]] = {
    "postgresql": frozenset(
        {
            "sslmode",
            "sslcert",
            "sslkey",
            "sslrootcert",
            "sslcrl",
            "application_name",
            "connect_timeout",
            "options",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "target_session_attrs",
        }
    ),
    "mysql": frozenset({"charset", "unix_socket"}),
}
_OWN_EXTRAS = frozenset({"sqlalchemy_scheme", "sqlalchemy_query"})
# Extras that headrace's email/SMTP or other parts read, or that only describe the connection: never warned about.
_HARMLESS_EXTRAS = frozenset({"description"})


def drivername(conn: Connection) -> str:
    """The SQLAlchemy ``drivername`` for ``conn`` (the extra ``sqlalchemy_scheme`` wins).

    Raises ``ValueError`` naming the connection and the supported types when there is none.
    """
    scheme = conn.extra_dejson.get("sqlalchemy_scheme")
    if scheme:
        return str(scheme)
    try:
        return DRIVERS[conn.conn_type.lower()]
    except KeyError:
        raise ValueError(
            f"connection {conn.conn_id!r}: conn_type {conn.conn_type!r} has no SQL driver in headrace "
            f"(supported: {', '.join(sorted(DRIVERS))}; or set the extra sqlalchemy_scheme, "
            "e.g. 'mssql+pyodbc')"
        ) from None


def _backend(name: str) -> str:
    return name.split("+", 1)[0]


def sqlalchemy_url(conn: Connection, *, database: str | None = None) -> URL:
    """The SQLAlchemy URL of ``conn`` (see the module table); ``database`` overrides the connection's.

    Raises ``ValueError`` naming the connection for a type with no driver or a
    ``sqlalchemy_query`` extra that is not an object.
    """
    name = drivername(conn)
    extra = conn.extra_dejson
    query: dict[str, str] = {}
    for key in sorted(_QUERY_EXTRAS.get(_backend(name), frozenset()) & extra.keys()):
        query[key] = str(extra[key])
    more = extra.get("sqlalchemy_query") or {}
    if not isinstance(more, dict):
        raise ValueError(f"connection {conn.conn_id!r}: extra sqlalchemy_query must be a JSON object, got {more!r}")
    query.update({str(k): str(v) for k, v in more.items()})
    if _backend(name) == "sqlite":
        path = database or conn.host or conn.schema or ""
        return URL.create(name, database=path or None, query=query)
    return URL.create(
        name,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port,
        database=database or conn.schema or None,
        query=query,
    )


def ignored_extras(conn: Connection) -> list[str]:
    """The extra fields of ``conn`` that :func:`sqlalchemy_url` does not use (sorted), for a warning."""
    try:
        used = _QUERY_EXTRAS.get(_backend(drivername(conn)), frozenset())
    except ValueError:
        used = frozenset()
    return sorted(set(conn.extra_dejson) - used - _OWN_EXTRAS - _HARMLESS_EXTRAS)


__all__ = ["DRIVERS", "drivername", "ignored_extras", "sqlalchemy_url"]
