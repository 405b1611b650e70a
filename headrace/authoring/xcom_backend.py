"""The XCom backend interface (Airflow's ``BaseXCom``): how a value is stored and read back.

The deployment's backend is the class named by ``core.xcom_backend`` (default
``headrace.authoring.xcom_backend.BaseXCom``), imported by path in every task process, the API and the UI.
A custom backend subclasses :class:`BaseXCom` and overrides some of its three methods::

    class S3XCom(BaseXCom):
        @staticmethod
        def serialize_value(value, *, key=None, task_id=None, dag_id=None, run_id=None, map_index=None):
            uri = f"s3://bucket/{dag_id}/{run_id}/{task_id}/{key}"
            upload(uri, BaseXCom.serialize_value(value))   # the value, stored elsewhere
            return uri                                   # what the xcom table keeps

        @staticmethod
        def deserialize_value(result):
            return BaseXCom.deserialize_value(BaseXCom(value=download(result.value)))

        def orm_deserialize_value(self):
            return f"stored at {self.value}"             # the UI and API show this, without downloading

* ``serialize_value`` runs in the task process that pushes; it returns JSON data (a str, number, list or
  dict), which the xcom table stores as JSON text (``core.xcom_max_size`` applies to that text).
* ``deserialize_value(result)`` runs in the task process that pulls; ``result.value`` is what
  ``serialize_value`` returned (and ``result.key``, ``task_id``, ``dag_id``, ``run_id``, ``map_index``
  say which XCom it is).
* ``orm_deserialize_value()`` runs in the API server and the web UI, on a ``BaseXCom`` made from the stored
  row (``self.value`` etc.): what ``xcomEntries`` and the XCom tab show. It must not be slow or import
  task code; the default shows the value with every type decoded except classes, which are shown as
  ``{"__class__": "module.Name", **fields}``.
"""

from __future__ import annotations

import importlib
from typing import Any

from headrace.authoring.xcom_serde import decode, encode
from headrace.exceptions import ConfigError, XComError

DEFAULT_XCOM_BACKEND = "headrace.authoring.xcom_backend.BaseXCom"
"""``core.xcom_backend``'s default."""


class BaseXCom:
    """One stored XCom as a backend sees it, and the three methods a custom backend overrides."""

    XCOM_RETURN_KEY = "return_value"
    """The key a task's return value is pushed under."""

    def __init__(
        self,
        *,
        value: Any,
        key: str = XCOM_RETURN_KEY,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int = -1,
    ) -> None:
        self.value = value
        """What ``serialize_value`` returned when the XCom was pushed (JSON data)."""
        self.key = key
        self.task_id = task_id
        self.dag_id = dag_id
        self.run_id = run_id
        self.map_index = map_index
        """−1 for an unmapped task instance."""

    def __repr__(self) -> str:
        return f"<XCom {self.dag_id}.{self.task_id} {self.run_id} key={self.key!r}>"

    @staticmethod
    def serialize_value(
        value: Any,
        *,
        key: str | None = None,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
    ) -> Any:
        """``value`` as JSON data to store (see :mod:`~headrace.authoring.xcom_serde` for the types kept).

        Raises ``TypeError`` naming the type when a value has no stored form.
        """
        return encode(value)

    @staticmethod
    def deserialize_value(result: Any) -> Any:
        """The value ``result.value`` (what :meth:`serialize_value` returned) stands for, in a task process.

        Raises ``XComError`` when the value names a class that cannot be imported here.
        """
        return decode(result.value)

    def orm_deserialize_value(self) -> Any:
        """What the UI and API show for this stored XCom: decoded without importing any class."""
        return decode(self.value, load_classes=False)


def resolve_xcom_backend(path: str) -> type[BaseXCom]:
    """The class ``core.xcom_backend`` names (``package.module.ClassName``).

    Raises ``ConfigError`` naming the setting when it cannot be imported or is not a ``BaseXCom`` subclass.
    """
    module_name, _, class_name = path.rpartition(".")
    try:
        backend = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"core.xcom_backend = {path!r} cannot be imported: {type(exc).__name__}: {exc}", key="core.xcom_backend"
        ) from None
    if not (isinstance(backend, type) and issubclass(backend, BaseXCom)):
        raise ConfigError(
            f"core.xcom_backend = {path!r} is not a subclass of headrace's BaseXCom", key="core.xcom_backend"
        )
    return backend


__all__ = ["DEFAULT_XCOM_BACKEND", "BaseXCom", "XComError", "resolve_xcom_backend"]
