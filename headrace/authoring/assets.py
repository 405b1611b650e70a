"""Assets (data-aware scheduling): ``Asset``, ``AssetAlias`` and the conditions ``AssetAll`` / ``AssetAny``.

As in Airflow 3: an asset is a logical piece of data named by ``name`` and
``uri`` (either one sets both when the other is not given). A task lists the
assets it updates in ``outlets=[...]``; when a try of it succeeds an *asset
event* is recorded for each, and a DAG with ``schedule=[asset, ...]`` (all of
them) or ``schedule=a | (b & c)`` gets an ``asset_triggered`` run once its
condition is met by events since its previous asset-triggered run.

URIs are validated and normalised as Airflow does (:func:`sanitize_uri`): a
string without a scheme is kept as it is; the ``airflow`` scheme is reserved;
the scheme is lower-cased, user and password are dropped (with a warning),
the query is sorted and the fragment is dropped. Names and URIs are at most
1,500 characters, not empty or blank; a URI is ASCII.

``AssetAlias(name)``: an alias a task writes events to at run time
(``outlet_events[alias].add(Asset(...))``); each event is resolved to a real
asset. A DAG scheduled on an alias runs on events of any asset the alias has
resolved to.

Everything here is pure Python: the scheduler reads conditions back from
:meth:`BaseAsset.as_json` (:func:`asset_from_json`).
"""

from __future__ import annotations

import json
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

MAX_IDENTIFIER_LENGTH = 1500
"""Longest asset name, URI or alias name, in characters (Airflow's)."""


class AssetUniqueKey(NamedTuple):
    """What identifies an asset: its name and URI."""

    name: str
    uri: str


def _check_identifier(kind: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{kind} cannot be empty")
    if value.isspace():
        raise ValueError(f"{kind} cannot be just whitespace")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"{kind} cannot exceed {MAX_IDENTIFIER_LENGTH} characters")
    return value


def sanitize_uri(uri: str) -> str:
    """Validate and normalise an asset URI (Airflow's rules, see the module docstring); return it.

    Raises ``ValueError`` for a non-ASCII URI and for the reserved ``airflow`` scheme.
    """
    if not uri.isascii():
        raise ValueError("Asset URI must only consist of ASCII characters")
    parsed = urllib.parse.urlsplit(uri)
    if not parsed.scheme and not parsed.netloc:  # not a URI: kept as written
        return uri
    scheme = parsed.scheme.lower()
    if not scheme or scheme.startswith("x-"):
        return uri
    if scheme == "airflow":
        raise ValueError("Asset scheme 'airflow' is reserved")
    _, auth, netloc = parsed.netloc.rpartition("@")
    if auth:
        warnings.warn(
            "An Asset URI should not contain auth info (e.g. username or password). It has been automatically dropped.",
            UserWarning,
            stacklevel=3,
        )
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parsed.query))) if parsed.query else ""
    return urllib.parse.urlunsplit((scheme, netloc, parsed.path, query, ""))


def _check_extra(extra: Any, what: str) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(f"{what} extra must be a dict, got {type(extra).__name__}")
    try:
        return dict(json.loads(json.dumps(dict(extra))))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} extra must be JSON-serializable: {exc}") from None


class BaseAsset:
    """An asset condition: an asset, an alias, or ``AssetAll`` / ``AssetAny`` of them (``&`` and ``|``)."""

    def __or__(self, other: BaseAsset) -> AssetAny:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(self, other)

    def __and__(self, other: BaseAsset) -> AssetAll:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(self, other)

    def evaluate(
        self, statuses: Mapping[AssetUniqueKey, bool], aliases: Mapping[str, list[AssetUniqueKey]] | None = None
    ) -> bool:
        """Whether the condition is met, given which assets have an event (``statuses``, missing: False).

        ``aliases``: alias name → the assets it resolved to (an alias is met when any of them is).
        """
        raise NotImplementedError

    def iter_assets(self) -> Iterator[Asset]:
        """Every asset named in the condition (depth first)."""
        return iter(())

    def iter_aliases(self) -> Iterator[AssetAlias]:
        """Every alias named in the condition."""
        return iter(())

    def as_json(self) -> dict[str, Any]:
        """A JSON-able dict, read back by :func:`asset_from_json`."""
        raise NotImplementedError


class Asset(BaseAsset):
    """A piece of data tasks produce and DAGs are scheduled on (Airflow 3's ``Asset``; ``Dataset`` is the same).

    ``Asset(name=None, uri=None, *, group="asset", extra=None)``: with one of ``name`` / ``uri`` the other
    takes its value; ``extra`` is a JSON-able dict stored with the asset. Equal assets have the same name
    and URI. Raises ``TypeError`` / ``ValueError`` for a bad argument (see the module docstring).
    """

    def __init__(
        self, name: str | None = None, uri: str | None = None, *, group: str = "asset", extra: Any = None
    ) -> None:
        if name is None and uri is None:
            raise TypeError("Asset() requires either 'name' or 'uri'")
        name = uri if name is None else name
        uri = name if uri is None else uri
        self.name = _check_identifier("Asset name", name)
        self.uri = sanitize_uri(_check_identifier("Asset URI", uri))
        self.group = _check_identifier("Asset group", group)
        self.extra = _check_extra(extra, "Asset")

    @property
    def key(self) -> AssetUniqueKey:
        """``(name, uri)``."""
        return AssetUniqueKey(self.name, self.uri)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Asset) and self.key == other.key

    def __hash__(self) -> int:
        return hash(("asset", self.name, self.uri))

    def __repr__(self) -> str:
        return f"Asset(name={self.name!r}, uri={self.uri!r}, group={self.group!r})"

    def evaluate(
        self, statuses: Mapping[AssetUniqueKey, bool], aliases: Mapping[str, list[AssetUniqueKey]] | None = None
    ) -> bool:
        return bool(statuses.get(self.key, False))

    def iter_assets(self) -> Iterator[Asset]:
        yield self

    def as_json(self) -> dict[str, Any]:
        return {"__type": "asset", "name": self.name, "uri": self.uri, "group": self.group, "extra": self.extra}


Dataset = Asset
"""Airflow 2's name of :class:`Asset` (``airflow.datasets.Dataset``)."""


class AssetAlias(BaseAsset):
    """A name a task attaches asset events to at run time (Airflow 3's ``AssetAlias``).

    In ``outlets=[alias]``, the task adds events with ``outlet_events[alias].add(Asset(...), extra={...})``;
    each becomes an event of that asset. In a schedule, it stands for the assets its events resolved to.
    """

    def __init__(self, name: str, *, group: str = "asset") -> None:
        self.name = _check_identifier("AssetAlias name", name)
        self.group = _check_identifier("AssetAlias group", group)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetAlias) and self.name == other.name

    def __hash__(self) -> int:
        return hash(("asset_alias", self.name))

    def __repr__(self) -> str:
        return f"AssetAlias(name={self.name!r}, group={self.group!r})"

    def evaluate(
        self, statuses: Mapping[AssetUniqueKey, bool], aliases: Mapping[str, list[AssetUniqueKey]] | None = None
    ) -> bool:
        return any(statuses.get(key, False) for key in (aliases or {}).get(self.name, ()))

    def iter_aliases(self) -> Iterator[AssetAlias]:
        yield self

    def as_json(self) -> dict[str, Any]:
        return {"__type": "asset_alias", "name": self.name, "group": self.group}


class _AssetBooleanCondition(BaseAsset):
    all_of: bool
    """True: met when all objects are (AssetAll); False: when any is (AssetAny)."""
    kind: str

    def __init__(self, *objects: BaseAsset) -> None:
        if not objects:
            raise TypeError(f"{type(self).__name__}() needs at least one asset, alias or condition")
        if not all(isinstance(o, BaseAsset) for o in objects):
            raise TypeError(f"{type(self).__name__} takes assets, aliases and asset conditions only")
        self.objects: tuple[BaseAsset, ...] = objects

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _AssetBooleanCondition) and type(other) is type(self) and self.objects == other.objects

    def __hash__(self) -> int:
        return hash((self.kind, self.objects))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"

    def evaluate(
        self, statuses: Mapping[AssetUniqueKey, bool], aliases: Mapping[str, list[AssetUniqueKey]] | None = None
    ) -> bool:
        results = (o.evaluate(statuses, aliases) for o in self.objects)
        return all(results) if self.all_of else any(results)

    def iter_assets(self) -> Iterator[Asset]:
        seen: set[AssetUniqueKey] = set()
        for o in self.objects:
            for asset in o.iter_assets():
                if asset.key not in seen:
                    seen.add(asset.key)
                    yield asset

    def iter_aliases(self) -> Iterator[AssetAlias]:
        for o in self.objects:
            yield from o.iter_aliases()

    def as_json(self) -> dict[str, Any]:
        return {"__type": self.kind, "objects": [o.as_json() for o in self.objects]}


class AssetAny(_AssetBooleanCondition):
    """Met when any of its assets (or conditions) is: ``a | b``."""

    all_of = False
    kind = "asset_any"

    def __or__(self, other: BaseAsset) -> AssetAny:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(*self.objects, other)


class AssetAll(_AssetBooleanCondition):
    """Met when all of its assets (or conditions) are: ``a & b``, and ``schedule=[a, b]``."""

    all_of = True
    kind = "asset_all"

    def __and__(self, other: BaseAsset) -> AssetAll:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(*self.objects, other)


def asset_from_json(data: Mapping[str, Any]) -> BaseAsset:
    """Rebuild what :meth:`BaseAsset.as_json` wrote. Raises ``ValueError`` for an unknown layout."""
    kind = data.get("__type")
    if kind == "asset":
        return Asset(name=data["name"], uri=data["uri"], group=data.get("group", "asset"), extra=data.get("extra"))
    if kind == "asset_alias":
        return AssetAlias(data["name"], group=data.get("group", "asset"))
    if kind == "asset_all":
        return AssetAll(*(asset_from_json(o) for o in data["objects"]))
    if kind == "asset_any":
        return AssetAny(*(asset_from_json(o) for o in data["objects"]))
    raise ValueError(f"not a serialized asset or asset condition: {dict(data)!r}")


def as_condition(schedule: Any) -> BaseAsset | None:
    """The asset condition of ``DAG(schedule=...)``, or None when the schedule is not asset-based.

    A list or tuple of assets means all of them (Airflow's rule). Raises ``TypeError`` for a list holding
    something that is not an asset, an alias or a condition.
    """
    if isinstance(schedule, BaseAsset):
        return schedule
    if isinstance(schedule, (list, tuple)) and schedule and any(isinstance(o, BaseAsset) for o in schedule):
        return AssetAll(*schedule)
    return None


def check_lineage(task_id: str, kind: str, value: Any) -> tuple[BaseAsset, ...]:
    """``inlets`` / ``outlets`` of a task as a tuple of assets and aliases.

    One asset or a list of them; ``inlets`` may also hold ``AssetAll``/``AssetAny`` (their assets are read).
    Raises ``TypeError`` naming the task for anything else (headrace has no other lineage objects).
    """
    if value is None:
        return ()
    items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    out: list[BaseAsset] = []
    for item in items:
        if isinstance(item, (Asset, AssetAlias)):
            out.append(item)
        elif isinstance(item, _AssetBooleanCondition) and kind == "inlets":
            out.extend(item.iter_assets())
        else:
            raise TypeError(
                f"task {task_id!r}: {kind} must hold Asset or AssetAlias objects, got {type(item).__name__} "
                "(headrace has no other lineage objects)"
            )
    return tuple(out)


__all__ = [
    "MAX_IDENTIFIER_LENGTH",
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "AssetUniqueKey",
    "BaseAsset",
    "Dataset",
    "as_condition",
    "asset_from_json",
    "check_lineage",
    "sanitize_uri",
]
