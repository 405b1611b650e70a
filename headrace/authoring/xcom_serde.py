"""How XCom values become JSON text and back: the types Airflow 3's serde round-trips.

Plain JSON values (None, bool, int, float, str, lists, dicts with str keys) are stored as they are.
Other values are a typed envelope ``{"__hr__": TAG, "v": …}`` (the xcom table's ``value`` column is
text, so nothing in the schema changes):

=================  ==========================================================================
``datetime``        ISO 8601, plus ``"tz"`` when the time zone is a named ``ZoneInfo``
``date``/``time``   ISO 8601
``timedelta``       seconds
``bytes``           base64
``tuple``/``set``   lists (``frozenset`` too); namedtuples come back as tuples, as in Airflow
``dict``            with keys that are not all str: a list of ``[key, value]`` pairs
``decimal``         ``str(Decimal)`` (exact)
``uuid``/``path``   ``str()``; paths come back as ``pathlib.Path``
``numpy``           a numpy scalar: its dtype and ``item()``
``ndarray``         dtype, shape and the raw bytes (base64): NaN and infinities survive
``dataframe``       a pandas DataFrame as pandas' "table" JSON (schema and rows; NaN as null)
``object``          a dataclass, attrs class, pydantic model or a class with Airflow's
                    ``serialize()`` / ``deserialize(data, version)`` methods: ``"class"``
                    (``module:QualName``), ``"version"`` (the class's ``__version__``, default 0)
                    and its fields (nested values keep their types)
=================  ==========================================================================

Reading an ``object`` imports its class: its module must be importable where the value is read (a DAG
file's own module is, in that DAG's tasks; so are modules in the DAGs folder), and its dotted name
(``module.QualName``) must be allowed, as in Airflow 3: ``core.allowed_deserialization_classes`` (glob
patterns, whitespace-separated; default ``headrace.*``, Airflow's ``airflow.*``) or
``core.allowed_deserialization_classes_regexp`` (regular expressions matched at the start; default none).
The types of the other envelopes are always allowed (Airflow's built-in serializers). So a dataclass or
pydantic model of a DAG file is refused until its module is allowed, as in Airflow (a DAG file is imported
as ``headrace_dag_<hash>``: ``headrace_dag_*`` allows every DAG file's classes; ``my_models.*`` a module of
the DAGs folder). The task process installs the deployment's list (:func:`set_allowed_classes`).
:func:`decode` with ``load_classes=False`` never imports anything: objects come back as
``{"__class__": name, **fields}`` — what the UI and API show.
"""

from __future__ import annotations

import base64
import dataclasses
import decimal
import fnmatch
import importlib
import json
import pathlib
import re
import sys
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from headrace.exceptions import XComError

TAG = "__hr__"
"""The key that marks a typed envelope."""

_JSON_SCALARS = frozenset({bool, int, float, str})


@dataclasses.dataclass(frozen=True)
class AllowedClasses:
    """Which classes :func:`decode` may import and rebuild (Airflow's ``core.allowed_deserialization_classes``
    and ``core.allowed_deserialization_classes_regexp``)."""

    globs: tuple[str, ...] = ("headrace.*",)
    """``fnmatch`` patterns matched against the whole dotted class name."""
    regexps: tuple[str, ...] = ()
    """Regular expressions matched at the start of the dotted class name (``re.match``)."""

    @classmethod
    def from_config(cls, globs: str, regexps: str = "") -> AllowedClasses:
        """From the two settings' text (whitespace-separated patterns). Raises ``ValueError`` naming a bad
        regular expression."""
        for pattern in regexps.split():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"core.allowed_deserialization_classes_regexp: bad pattern {pattern!r}: {exc}"
                ) from None
        return cls(tuple(globs.split()), tuple(regexps.split()))

    def allows(self, dotted: str) -> bool:
        """True if class ``dotted`` (``module.QualName``) matches a glob or a regular expression."""
        return any(fnmatch.fnmatchcase(dotted, g) for g in self.globs) or any(re.match(r, dotted) for r in self.regexps)


_allowed = AllowedClasses()


def set_allowed_classes(allowed: AllowedClasses) -> None:
    """Install the allow-list :func:`decode` checks in this process (the task process does, from the settings
    its supervisor passes; the default, until then, is ``headrace.*``)."""
    global _allowed  # noqa: PLW0603 - one process-wide setting, installed once at the start of a try
    _allowed = allowed


def allowed_classes() -> AllowedClasses:
    """The allow-list installed in this process."""
    return _allowed


def encode(value: Any) -> Any:
    """``value`` as plain JSON data (envelopes for other types). Raises ``TypeError`` naming the type."""
    kind = type(value)
    if value is None or kind in _JSON_SCALARS:
        return value
    module = kind.__module__.partition(".")[0]
    if module == "numpy":  # before the subclass checks: numpy.float64 is a float
        return _encode_numpy(value)
    if isinstance(value, (bool, int, float, str)):  # str/int enums and other subclasses: their JSON value
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, datetime):
        out: dict[str, Any] = {TAG: "datetime", "v": value.isoformat()}
        if isinstance(value.tzinfo, ZoneInfo):
            out["tz"] = value.tzinfo.key
        return out
    if isinstance(value, date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, (bytes, bytearray)):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = sorted((encode(v) for v in value), key=lambda x: json.dumps(x, sort_keys=True))
        return {TAG: "frozenset" if isinstance(value, frozenset) else "set", "v": items}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if isinstance(value, pathlib.PurePath):
        return {TAG: "path", "v": str(value)}
    if module == "pandas":
        return _encode_pandas(value)
    return _encode_object(value)


def _encode_numpy(value: Any) -> dict[str, Any]:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(f"numpy.ndarray of dtype {value.dtype} (only bool and numeric arrays)")
        data = np.ascontiguousarray(value)
        return {
            TAG: "ndarray",
            "dtype": data.dtype.str,
            "shape": list(data.shape),
            "v": base64.b64encode(data.tobytes()).decode("ascii"),
        }
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        return {TAG: "numpy", "dtype": value.dtype.str, "v": value.item()}
    raise TypeError(f"{type(value).__module__}.{type(value).__qualname__}")


def _encode_pandas(value: Any) -> dict[str, Any]:
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise TypeError(f"{type(value).__module__}.{type(value).__qualname__} (of pandas, only DataFrame)")
    try:
        table = json.loads(value.to_json(orient="table", date_unit="ns"))
    except ValueError as exc:
        raise TypeError(f"pandas.DataFrame that pandas cannot write as table JSON ({exc})") from None
    # the table schema has no time resolution: keep datetime columns' dtypes to restore them exactly
    units = {str(c): str(t) for c, t in value.dtypes.items() if str(t).startswith("datetime64")}
    return {TAG: "dataframe", "v": table, "dtypes": units}


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode_object(value: Any) -> dict[str, Any]:
    cls = type(value)
    version = getattr(cls, "__version__", 0)
    if hasattr(value, "serialize") and callable(value.serialize) and hasattr(cls, "deserialize"):
        data = value.serialize()
    elif hasattr(cls, "model_dump") and hasattr(cls, "model_validate"):  # pydantic v2
        data = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value):
        data = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    elif hasattr(cls, "__attrs_attrs__"):
        data = {a.name: getattr(value, a.name) for a in cls.__attrs_attrs__ if a.init}
    else:
        name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
        raise TypeError(f"{name} (see docs/xcom.md for the types an XCom keeps)")
    if not isinstance(version, int):
        raise TypeError(f"{cls.__qualname__}.__version__ must be an int, got {version!r}")
    return {TAG: "object", "class": _class_name(cls), "version": version, "v": encode(data)}


def decode(value: Any, *, load_classes: bool = True) -> Any:
    """Inverse of :func:`encode`.

    ``load_classes=False``: nothing is imported and objects are not rebuilt:
    ``{"__class__": "module.QualName", **fields}``; DataFrames and arrays come back as plain data too.
    Raises ``XComError`` for an unknown tag or a class that cannot be imported.
    """
    if isinstance(value, list):
        return [decode(v, load_classes=load_classes) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: decode(v, load_classes=load_classes) for k, v in value.items()}
    raw = value["v"]
    simple = _SIMPLE.get(tag)
    if simple is not None:
        return simple(raw)
    if tag in ("tuple", "set", "frozenset", "dict"):
        items = [decode(v, load_classes=load_classes) for v in raw]
        if tag == "dict":
            return {_hashable(k): v for k, v in items}
        if tag == "tuple":
            return tuple(items)
        return frozenset(map(_hashable, items)) if tag == "frozenset" else set(map(_hashable, items))
    if tag == "datetime":
        when = datetime.fromisoformat(raw)
        return when.astimezone(ZoneInfo(value["tz"])) if "tz" in value else when
    if tag == "numpy":
        return _decode_numpy(value, load_classes)
    if tag == "ndarray":
        return _decode_ndarray(value, load_classes)
    if tag == "dataframe":
        return _decode_dataframe(raw, value.get("dtypes", {})) if load_classes else raw
    if tag == "object":
        return _decode_object(value, load_classes)
    raise XComError(f"unknown XCom type tag {tag!r}")


def _hashable(value: Any) -> Any:
    return tuple(map(_hashable, value)) if isinstance(value, list) else value


_SIMPLE: dict[str, Any] = {
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": lambda raw: timedelta(seconds=raw),
    "bytes": base64.b64decode,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "path": pathlib.Path,
}


def _decode_numpy(value: dict[str, Any], load_classes: bool) -> Any:
    if not load_classes:
        return value["v"]
    import numpy as np

    return np.dtype(value["dtype"]).type(value["v"])


def _decode_ndarray(value: dict[str, Any], load_classes: bool) -> Any:
    import numpy as np

    array = np.frombuffer(base64.b64decode(value["v"]), dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if not load_classes:  # plain data for the UI: NaN and infinities as strings (JSON has none)
        return _json_safe(array.tolist())
    return array.copy()  # writable, as the array that was pushed


def _json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    return value


def _decode_dataframe(raw: Any, dtypes: dict[str, str]) -> Any:
    import io

    import pandas as pd

    frame = pd.read_json(io.StringIO(json.dumps(raw)), orient="table")
    return frame.astype({c: t for c, t in dtypes.items() if c in frame.columns}) if dtypes else frame


def _decode_object(value: dict[str, Any], load_classes: bool) -> Any:
    name = value["class"]
    data = decode(value["v"], load_classes=load_classes)
    if not load_classes:
        return (
            {"__class__": name.replace(":", "."), **data} if isinstance(data, dict) else {"__class__": name, "v": data}
        )
    dotted = name.replace(":", ".")
    if not _allowed.allows(dotted):
        raise XComError(
            f"XCom value of class {dotted} was not found in allow list for deserialization imports: add a pattern "
            "matching it to core.allowed_deserialization_classes (glob) or core.allowed_deserialization_classes_regexp"
            " (classes defined in a DAG file live in its module headrace_dag_<hash>: 'headrace_dag_*' allows them)"
        )
    cls = _import_class(name)
    version = value.get("version", 0)
    if hasattr(cls, "deserialize"):
        return cls.deserialize(data, version)
    if hasattr(cls, "model_validate"):
        return cls.model_validate(data)
    class_version = getattr(cls, "__version__", 0)
    if isinstance(class_version, int) and version > class_version:
        raise XComError(f"XCom value of class {dotted} has version {version}, newer than the class's {class_version}")
    if not isinstance(data, dict):
        raise XComError(f"XCom value of class {dotted} is not a dict of fields")
    return cls(**data)


def _import_class(name: str) -> Any:
    module_name, _, qualname = name.partition(":")
    try:
        target: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise XComError(
            f"XCom value of class {name.replace(':', '.')} cannot be read here: {type(exc).__name__}: {exc}"
        ) from None
    return target
