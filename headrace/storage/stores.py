"""The deployment's two stores, built from the settings: remote try logs and object-storage XComs.

:class:`Stores` opens each on first use and keeps it (a connection named by a setting or a URL is read from
the metadata database once). A store that cannot be opened (no such connection, no file system for the
protocol) raises ``ConfigError`` naming the setting each time it is asked for, so one bad setting is reported
where it is used and stops nothing else.
"""

from __future__ import annotations

import threading

from headrace.authoring.secrets import Connection
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.exceptions import ConfigError
from headrace.secrets_store import get_connection
from headrace.storage.objects import ObjectStore, needed_conn_id, open_store

LOGS_SETTING = "logging.remote_base_log_folder"
XCOMS_SETTING = "core.xcom_objectstorage_path"


def remote_logs_url(settings: Settings) -> str:
    """``logging.remote_base_log_folder`` when ``logging.remote_logging`` is true, else empty (off), as in Airflow."""
    if not settings.get_bool("logging", "remote_logging"):
        return ""
    return settings.get_str("logging", "remote_base_log_folder").strip()


class Stores:
    """Lazily opened stores of one deployment (thread-safe)."""

    def __init__(self, settings: Settings, db: Database | None) -> None:
        self.settings = settings
        self.db = db
        """Where connections are read from (None: only stores that name no connection can be opened)."""
        self._lock = threading.Lock()
        self._opened: dict[str, ObjectStore] = {}

    @property
    def logs_url(self) -> str:
        """The remote log folder (empty: remote logging is off): :func:`remote_logs_url`."""
        return remote_logs_url(self.settings)

    @property
    def xcoms_url(self) -> str:
        """``core.xcom_objectstorage_path`` (empty: XComs stay in the database)."""
        return self.settings.get_str("core", "xcom_objectstorage_path").strip()

    def logs(self) -> ObjectStore | None:
        """The remote log store, or None when remote logging is off. Raises ``ConfigError`` naming the setting."""
        url = self.logs_url
        if not url:
            return None
        return self._open(LOGS_SETTING, url, self.settings.get_str("logging", "remote_log_conn_id").strip())

    def xcoms(self, *, for_reading: bool = False) -> ObjectStore | None:
        """The XCom object store, or None when it is off (no path, or threshold -1: ``for_reading`` ignores the
        threshold, so values stored before it was set to -1 stay readable). Raises ``ConfigError``."""
        url = self.xcoms_url
        if not url or (not for_reading and self.settings.get_int("core", "xcom_objectstorage_threshold") < 0):
            return None
        return self._open(XCOMS_SETTING, url, "")

    def _open(self, setting: str, url: str, conn_id_setting: str) -> ObjectStore:
        with self._lock:
            store = self._opened.get(setting)
            if store is None:
                conn_id = needed_conn_id(url, conn_id_setting)
                conn = self._connection(conn_id, setting) if conn_id else None
                store = open_store(url, setting, conn)
                self._opened[setting] = store
            return store

    def _connection(self, conn_id: str, setting: str) -> Connection:
        if self.db is None:
            raise ConfigError(f"{setting}: connection {conn_id!r} cannot be read here (no database)", key=setting)
        encryptor = Encryptor.from_settings(self.settings)
        with self.db.read_session() as session:
            conn = get_connection(session, encryptor, conn_id)
        if conn is None:
            raise ConfigError(f"{setting}: there is no connection {conn_id!r}", key=setting)
        return conn


__all__ = ["LOGS_SETTING", "XCOMS_SETTING", "Stores", "remote_logs_url"]
