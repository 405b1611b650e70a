"""XCom values in an object store: large values go to ``core.xcom_objectstorage_path``, the row keeps a reference.

As Airflow's object-storage XCom backend does, a value whose serialized JSON is larger than
``core.xcom_objectstorage_threshold`` bytes (-1: never; 0: always) is written to the store, compressed as
``core.xcom_objectstorage_compression`` says, and the ``xcom`` row holds a reference instead::

    {"__hr__":"stored","url":"s3://bucket/xcoms/dag_id=d/run_id=r/task_id=t/<uuid>.json.gz","size":123456}

(``size``: bytes of the value's JSON). Unlike Airflow's, the reference is a typed envelope, so a task that
returns a string that happens to look like a URL is never mistaken for one, and the offload is done by the
supervisor, not the task process: it works with any ``core.xcom_backend`` (the store sees the backend's
serialized JSON) and the task process needs no storage credentials.

Readers resolve references transparently (:meth:`XComObjects.resolve`): the supervisor answering a task's
pull, the API's and UI's XCom views, ``headrace tasks test``. A reference is only followed into the
configured store (never to another URL a row names). When rows are deleted — the XComs a new try clears,
a key pushed again — their objects are deleted too (:meth:`XComObjects.purge`).
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import uuid
from collections.abc import Callable, Iterable

from headrace.authoring.xcom_serde import TAG
from headrace.exceptions import XComError
from headrace.logs.files import encode_component
from headrace.storage.stores import Stores

log = logging.getLogger("headrace.storage")

STORED_TAG = "stored"
"""The envelope tag of a reference to a stored value."""
_REFERENCE_PREFIX = json.dumps({TAG: STORED_TAG}, separators=(",", ":"))[:-1] + ","
"""How every reference's JSON text starts (the supervisor writes it compactly, ``__hr__`` first)."""

COMPRESSIONS: dict[str, tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "gzip": (".gz", gzip.compress, gzip.decompress),
    "bz2": (".bz2", bz2.compress, bz2.decompress),
    "lzma": (".xz", lzma.compress, lzma.decompress),
}
"""``core.xcom_objectstorage_compression`` → (file suffix, compress, decompress); empty or ``none``: stored as is."""


def is_reference(text: str | None) -> bool:
    """True if the stored XCom text ``text`` is a reference to a value in the object store."""
    return text is not None and text.startswith(_REFERENCE_PREFIX)


class XComObjects:
    """Offload, resolve and purge XCom values for one deployment (its ``core.xcom_objectstorage_*``)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        settings = stores.settings
        self.threshold = settings.get_int("core", "xcom_objectstorage_threshold")
        """Bytes from which a value goes to the store (a smaller one stays in the database; -1: never)."""
        compression = settings.get_str("core", "xcom_objectstorage_compression")
        self.compression = "" if compression == "none" else compression

    @property
    def enabled(self) -> bool:
        """Whether new values may go to the store (a path is set and the threshold is not -1)."""
        return bool(self.stores.xcoms_url) and self.threshold >= 0

    def offload(self, text: str, *, dag_id: str, run_id: str, task_id: str) -> str:
        """What the ``xcom`` row stores for the value ``text`` (JSON): ``text`` itself, or — when its size in
        bytes reaches the threshold (Airflow's rule: a value smaller than it stays in the database) — a
        reference to the object it was written to.

        Raises ``ConfigError`` when the store cannot be opened, or the storage library's error when the
        write fails (the task's push then fails with it).
        """
        data = text.encode("utf-8")
        if not self.enabled or len(data) < self.threshold:
            return text
        store = self.stores.xcoms()
        assert store is not None
        suffix, compress, _ = COMPRESSIONS.get(self.compression, ("", lambda b: b, lambda b: b))
        key = "/".join(
            [
                encode_component("dag_id", dag_id),
                encode_component("run_id", run_id),
                encode_component("task_id", task_id),
                f"{uuid.uuid4().hex}.json{suffix}",
            ]
        )
        store.put_bytes(key, compress(data))
        return json.dumps({TAG: STORED_TAG, "url": store.url_of(key), "size": len(data)}, separators=(",", ":"))

    def resolve(self, text: str) -> str:
        """The value's JSON for the stored text ``text`` (a reference is read from the store; else ``text``).

        Raises ``XComError`` for a reference outside the configured store, or one whose object is gone or
        cannot be read (naming its URL).
        """
        if not is_reference(text):
            return text
        url = _reference_url(text)
        store = self.stores.xcoms(for_reading=True)
        key = store.key_of(url) if store is not None and url else None
        if store is None or key is None:
            raise XComError(f"XCom value stored at {url!r} is outside core.xcom_objectstorage_path")
        try:
            data = store.read(key)
        except FileNotFoundError:
            raise XComError(f"XCom value stored at {url} is gone from the object store") from None
        except Exception as exc:  # noqa: BLE001 - whatever the storage library raises: one XComError naming the URL
            raise XComError(f"XCom value stored at {url} cannot be read: {type(exc).__name__}: {exc}") from None
        for suffix, _, decompress in COMPRESSIONS.values():
            if key.endswith(f".json{suffix}"):
                data = decompress(data)
                break
        return data.decode("utf-8")

    def purge(self, texts: Iterable[str | None]) -> int:
        """Delete the objects the stored texts ``texts`` refer to (others are skipped); return how many were
        deleted. Never raises: an object that cannot be deleted is logged and left."""
        deleted = 0
        for text in texts:
            if not is_reference(text):
                continue
            assert text is not None
            url = _reference_url(text)
            try:
                store = self.stores.xcoms(for_reading=True)
                key = store.key_of(url) if store is not None and url else None
                if store is None or key is None:
                    continue
                store.delete(key)
                deleted += 1
            except Exception as exc:  # noqa: BLE001 - the rows are gone either way; a leftover object is only space
                log.warning("could not delete the stored XCom %s: %s: %s", url, type(exc).__name__, exc)
        return deleted


def _reference_url(text: str) -> str:
    try:
        ref = json.loads(text)
    except ValueError:
        return ""
    url = ref.get("url") if isinstance(ref, dict) else None
    return url if isinstance(url, str) else ""


__all__ = ["COMPRESSIONS", "STORED_TAG", "XComObjects", "is_reference"]
