"""Variables and connections as task code sees them: ``Variable.get`` and ``Connection.get``.

Authoring stays pure: this module never reads the database. A running task
process installs a :class:`SecretsRuntime` (``install_secrets_runtime``) that
asks the try's supervisor over its channel; the supervisor reads the row and
decrypts it. Outside a running task nothing is installed and every lookup
raises :class:`SecretsUnavailable` — reading secrets in DAG file top-level
code would run them in the DAG processor on every parse, which Airflow's best
practices already warn against. A tool that runs a task in its own process
(``headrace tasks test``) may install a runtime that reads the database
directly (``headrace.secrets_store.DatabaseSecrets``).

Templates see the same lookups lazily through ``context["var"]`` and
``context["conn"]``: ``{{ var.value.my_key }}``, ``{{ var.json.my_key.field }}``,
``{{ conn.my_conn.host }}`` fetch only what the template names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from headrace.exceptions import HeadraceError, NotFound


class VariableNotFound(NotFound, KeyError):
    """Raised when no variable has the given key (and no default was given); also a ``KeyError``."""


class ConnectionNotFound(NotFound, KeyError):
    """Raised when no connection has the given conn_id; also a ``KeyError``."""


class SecretsUnavailable(HeadraceError):
    """Raised when a variable or connection is read where no runtime can serve it (outside a running task)."""


@dataclass(frozen=True)
class Connection:
    """How to reach an outside system (Airflow's ``Connection``), as stored with ``headrace connections add``.

    ``repr`` never shows the password or sensitive extra values.
    """

    conn_id: str
    """Its name, e.g. ``warehouse_db``."""
    conn_type: str
    """Kind of system, e.g. ``postgres``, ``http``, ``s3``."""
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    """Plain text (decrypted); stored Fernet-encrypted."""
    schema: str | None = None
    """Database name or URL path, as in Airflow."""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)
    """Extra fields (a JSON object); stored Fernet-encrypted."""
    description: str | None = None

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """The connection ``conn_id``. Raises ``ConnectionNotFound``, or ``SecretsUnavailable`` outside a task."""
        data = _current_runtime(f"Connection.get({conn_id!r})").get_connection(conn_id)
        if data is None:
            raise ConnectionNotFound(f"no connection with conn_id {conn_id!r}", conn_id=conn_id)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Connection:
        """Build from a mapping with the field names (missing ones are None / ``{}``)."""
        port = data.get("port")
        return cls(
            conn_id=str(data["conn_id"]),
            conn_type=str(data.get("conn_type") or ""),
            host=data.get("host"),
            port=int(port) if port is not None else None,
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            extra=dict(data.get("extra") or {}),
            description=data.get("description"),
        )

    def to_dict(self) -> dict[str, Any]:
        """All fields, in plain text, as a JSON-able dict (the inverse of :meth:`from_dict`)."""
        return {
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "host": self.host,
            "port": self.port,
            "login": self.login,
            "password": self.password,
            "schema": self.schema,
            "extra": dict(self.extra),
            "description": self.description,
        }

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """``extra`` (Airflow's name for the parsed extra fields)."""
        return dict(self.extra)

    def get_uri(self) -> str:
        """The connection as a URI: ``type://login:password@host:port/schema?extra`` (parts URL-quoted).

        As in Airflow, ``_`` in the type becomes ``-`` in the scheme; when an
        extra value is not a string, the whole extra is one ``__extra__`` JSON parameter.
        """
        uri = f"{self.conn_type.replace('_', '-')}://"
        if self.login is not None or self.password is not None:
            uri += quote(self.login or "", safe="")
            if self.password is not None:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        uri += self.host or ""
        if self.port is not None:
            uri += f":{self.port}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        if self.extra and all(isinstance(v, str) for v in self.extra.values()):
            uri += "?" + urlencode(self.extra)
        elif self.extra:
            uri += "?" + urlencode({"__extra__": json.dumps(self.extra, sort_keys=True)})
        return uri

    def __repr__(self) -> str:
        password = "***" if self.password else None
        return (
            f"Connection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r}, "
            f"port={self.port!r}, login={self.login!r}, password={password!r}, schema={self.schema!r})"
        )


_NO_DEFAULT: Any = object()


class Variable:
    """Key/value settings stored in the metadata DB (``headrace variables set``), Airflow's ``Variable``."""

    @staticmethod
    def get(
        key: str, default: Any = _NO_DEFAULT, deserialize_json: bool = False, *, default_var: Any = _NO_DEFAULT
    ) -> Any:
        """The value of variable ``key`` (a str; parsed JSON with ``deserialize_json``).

        Returns ``default`` (as given, not parsed) when the key does not exist;
        ``default_var`` is the same argument under ``airflow.models.Variable``'s
        name. Raises ``TypeError`` when both are given, ``VariableNotFound`` (a
        ``KeyError``) when the key does not exist and no default was given,
        ``ValueError`` when ``deserialize_json`` and the value is not JSON,
        ``SecretsUnavailable`` outside a running task.
        """
        if default_var is not _NO_DEFAULT:
            if default is not _NO_DEFAULT:
                raise TypeError("Variable.get: give default= or default_var= (its Airflow 2 name), not both")
            default = default_var
        value = _current_runtime(f"Variable.get({key!r})").get_variable(key)
        if value is None:
            if default is _NO_DEFAULT:
                raise VariableNotFound(f"no variable with key {key!r}", key=key)
            return default
        if not deserialize_json:
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"variable {key!r} is not valid JSON: {exc}") from None


class SecretsRuntime(Protocol):
    """What the runtime offers ``Variable.get`` / ``Connection.get`` (the task process installs one)."""

    def get_variable(self, key: str) -> str | None:
        """The plain-text value of variable ``key``, or None if there is no such variable."""
        ...

    def get_connection(self, conn_id: str) -> Mapping[str, Any] | None:
        """The connection's fields (as :meth:`Connection.to_dict`), or None if there is no such connection."""
        ...


_runtime: SecretsRuntime | None = None


def install_secrets_runtime(runtime: SecretsRuntime | None) -> None:
    """Make ``runtime`` serve every lookup in this process (None: remove it). Called by the task process."""
    global _runtime
    _runtime = runtime


def _current_runtime(what: str) -> SecretsRuntime:
    if _runtime is None:
        raise SecretsUnavailable(
            f"{what}: variables and connections are only available inside a running task "
            "(not in DAG file top-level code, where they would be read on every parse)"
        )
    return _runtime


class _VariableValues:
    """``var.value`` / ``var.json`` in templates: attribute access fetches one variable."""

    def __init__(self, deserialize_json: bool) -> None:
        self._json = deserialize_json

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return Variable.get(key, deserialize_json=self._json)

    def __getitem__(self, key: str) -> Any:
        return Variable.get(key, deserialize_json=self._json)

    def get(self, key: str, default: Any = None) -> Any:
        """The variable, or ``default`` when it does not exist."""
        return Variable.get(key, default, deserialize_json=self._json)


class VariableAccessor:
    """``context["var"]``: ``var.value.<key>`` (text) and ``var.json.<key>`` (parsed JSON), fetched on use."""

    def __init__(self) -> None:
        self.value = _VariableValues(deserialize_json=False)
        self.json = _VariableValues(deserialize_json=True)


class ConnectionAccessor:
    """``context["conn"]``: ``conn.<conn_id>`` is that :class:`Connection`, fetched on use."""

    def __getattr__(self, conn_id: str) -> Connection:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return Connection.get(conn_id)

    def __getitem__(self, conn_id: str) -> Connection:
        return Connection.get(conn_id)

    def get(self, conn_id: str, default: Connection | None = None) -> Connection | None:
        """The connection, or ``default`` when it does not exist."""
        try:
            return Connection.get(conn_id)
        except ConnectionNotFound:
            return default


__all__ = [
    "Connection",
    "ConnectionAccessor",
    "ConnectionNotFound",
    "SecretsRuntime",
    "SecretsUnavailable",
    "Variable",
    "VariableAccessor",
    "VariableNotFound",
    "install_secrets_runtime",
]
