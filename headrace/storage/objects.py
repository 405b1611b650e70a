"""A place at an fsspec URL and the few operations headrace does there: put, read a range, size, delete.

URLs are fsspec's (``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///shared/prefix``, ``memory://…``),
optionally naming a connection in the user part as Airflow's ``ObjectStoragePath`` does:
``s3://aws_default@bucket/prefix``. Credentials come from that connection (or the one a setting names,
e.g. ``logging.remote_log_conn_id``), else from the storage library's own chain (``AWS_*`` variables,
``~/.aws``, instance roles):

* ``s3://``: the login and password are the access key id and secret; the extra's ``endpoint_url`` (an
  S3-compatible server: MinIO, Ceph, moto), ``region_name``, ``aws_access_key_id``,
  ``aws_secret_access_key`` and ``aws_session_token`` are used as Airflow's AWS connection uses them;
* any protocol: the extra's ``storage_options`` (a JSON object) is passed to the fsspec file system as it is.

Objects are addressed by a *key* relative to the store's URL (``dag_id=…/run_id=…/attempt=1.log``).
Every operation raises ``OSError`` (or the storage library's own error) when the store cannot be reached;
callers decide whether that matters.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from headrace.authoring.secrets import Connection
from headrace.exceptions import ConfigError

if TYPE_CHECKING:  # fsspec itself is imported when a store is opened: ~10 ms that a try without one never pays
    import fsspec

S3_CLIENT_CONFIG: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 2}}
"""botocore settings of an ``s3://`` store (seconds, attempts): a store that is down fails an operation in
seconds instead of blocking its caller for minutes (a log upload is simply tried again at its next interval)."""

PACKAGE_OF = {"s3": "s3fs (pip install 'headrace[s3]')", "s3a": "s3fs (pip install 'headrace[s3]')", "gs": "gcsfs"}
"""The package that serves a protocol, named in the error when it is missing."""


@dataclass(frozen=True)
class StoreURL:
    """A store URL taken apart: the URL without its connection id, and that id."""

    url: str
    """The URL as fsspec takes it (``s3://bucket/prefix``), without a trailing ``/``."""
    protocol: str
    """``s3``, ``gs``, ``file``, …"""
    conn_id: str | None
    """The connection named in the URL's user part (``s3://conn_id@bucket/…``), if any."""


def parse_store_url(url: str, setting: str) -> StoreURL:
    """Split ``url`` (see the module docstring); raises ``ConfigError`` naming ``setting`` if it has no protocol."""
    parts = urlsplit(url.strip())
    if not parts.scheme or len(parts.scheme) < 2:  # "C:" is a drive, not a protocol
        raise ConfigError(
            f"{setting} = {url!r} is not an fsspec URL (s3://bucket/prefix, file:///shared/folder, …)", key=setting
        )
    conn_id = None
    netloc = parts.netloc
    if "@" in netloc:
        conn_id, _, netloc = netloc.rpartition("@")
    plain = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")
    if parts.scheme == "file" and not netloc:
        plain = "file://" + (parts.path.rstrip("/") or "/")
    return StoreURL(url=plain, protocol=parts.scheme, conn_id=conn_id or None)


def storage_options(protocol: str, conn: Connection | None) -> dict[str, Any]:
    """The fsspec options reaching a store of ``protocol`` with ``conn`` (None: the library's defaults)."""
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        options["config_kwargs"] = dict(S3_CLIENT_CONFIG)
    elif protocol == "file":
        options["auto_mkdir"] = True
    if conn is None:
        return options
    extra: Mapping[str, Any] = conn.extra or {}
    if protocol in ("s3", "s3a"):
        key = conn.login or extra.get("aws_access_key_id")
        secret = conn.password or extra.get("aws_secret_access_key")
        if key:
            options["key"] = key
        if secret:
            options["secret"] = secret
        if extra.get("aws_session_token"):
            options["token"] = extra["aws_session_token"]
        endpoint = extra.get("endpoint_url") or (conn.host if conn.host and "://" in conn.host else None)
        if endpoint:
            options["endpoint_url"] = endpoint
        if extra.get("region_name"):
            options["client_kwargs"] = {"region_name": extra["region_name"]}
    more = extra.get("storage_options")
    if isinstance(more, Mapping):
        options.update(more)
    return options


class ObjectStore:
    """The objects under one fsspec URL, addressed by key (``a/b/c.log``)."""

    def __init__(self, url: str, fs: fsspec.AbstractFileSystem, root: str) -> None:
        self.url = url
        """The store's URL without a connection id (``s3://bucket/prefix``): shown to people and in references."""
        self.fs = fs
        self.root = root.rstrip("/")
        """The store's path in ``fs``'s own terms (``bucket/prefix``, ``/shared/prefix``)."""
        from fsspec.implementations.local import LocalFileSystem  # lazily: see the TYPE_CHECKING import

        self._local = isinstance(fs, LocalFileSystem)
        """A local (or mounted) file system: writes go through a temporary file and a rename."""

    def __repr__(self) -> str:
        return f"<ObjectStore {self.url}>"

    def url_of(self, key: str) -> str:
        """The URL of the object ``key``."""
        return f"{self.url}/{key}"

    def key_of(self, url: str) -> str | None:
        """The key of ``url`` if it names an object of this store, else None (never a path outside it)."""
        prefix = self.url + "/"
        if not url.startswith(prefix):
            return None
        key = url[len(prefix) :]
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            return None
        return key

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def put_file(self, local: str | os.PathLike[str], key: str) -> None:
        """Copy the local file ``local`` to the object ``key`` (replacing it whole)."""
        if self._local:  # readers never see a half-written file
            tmp = self._path(f"{key}.{uuid.uuid4().hex}.tmp")
            self.fs.put_file(os.fspath(local), tmp)
            self.fs.mv(tmp, self._path(key))
            return
        self.fs.put_file(os.fspath(local), self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` as the object ``key`` (replacing it whole)."""
        if self._local:
            tmp = self._path(f"{key}.{uuid.uuid4().hex}.tmp")
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self._path(key))
            return
        self.fs.pipe_file(self._path(key), data)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive; None: to the end) of the object ``key``.

        Raises ``FileNotFoundError`` if there is no such object.
        """
        data: bytes = self.fs.cat_file(self._path(key), start=start, end=end)
        return data

    def size(self, key: str) -> int | None:
        """Bytes in the object ``key``, or None if there is none."""
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        return int(info.get("size") or 0)

    def delete(self, key: str) -> None:
        """Remove the object ``key`` (none is fine)."""
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass


def preload(url: str) -> None:
    """Import the file system class serving ``url`` (a process that forks workers pays the import once).

    Does nothing for an empty or unusable URL (using the store reports that).
    """
    if not url:
        return
    import fsspec  # lazily: see the TYPE_CHECKING import

    try:
        fsspec.get_filesystem_class(parse_store_url(url, "url").protocol)
    except (ConfigError, ImportError, ValueError):
        return


def open_store(url: str, setting: str, conn: Connection | None = None) -> ObjectStore:
    """The store at ``url`` (the value of ``setting``), reached with ``conn`` or the connection the URL names.

    ``conn`` wins over a connection named in the URL (the caller has looked that one up: see
    :func:`needed_conn_id`). Raises ``ConfigError`` naming ``setting`` for a URL that is not an fsspec URL
    or whose protocol has no installed implementation.
    """
    import fsspec  # lazily: see the TYPE_CHECKING import

    parsed = parse_store_url(url, setting)
    try:
        cls = fsspec.get_filesystem_class(parsed.protocol)
    except (ImportError, ValueError) as exc:
        package = PACKAGE_OF.get(parsed.protocol)
        hint = f": install {package}" if package else f" ({exc})"
        raise ConfigError(f"{setting} = {url!r}: no file system for {parsed.protocol}://{hint}", key=setting) from None
    options = storage_options(parsed.protocol, conn)
    try:
        fs = cls(**options)
    except TypeError as exc:  # an option this file system does not take (from a connection's storage_options)
        raise ConfigError(f"{setting}: the storage options are refused by {cls.__name__}: {exc}", key=setting) from None
    root = cls._strip_protocol(parsed.url)
    return ObjectStore(parsed.url, fs, str(root))


def needed_conn_id(url: str, conn_id_setting: str = "") -> str | None:
    """The connection to look up for ``url``: ``conn_id_setting`` if set, else the one the URL names."""
    if conn_id_setting:
        return conn_id_setting
    if not url:
        return None
    return parse_store_url(url, "url").conn_id


__all__ = [
    "ObjectStore",
    "StoreURL",
    "needed_conn_id",
    "open_store",
    "parse_store_url",
    "preload",
    "storage_options",
]
