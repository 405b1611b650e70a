"""Asset events as a task's code sees them: ``outlet_events``, ``triggering_asset_events``, ``inlet_events``.

* ``outlet_events[asset].extra = {...}`` sets the extra of the event a successful try records for an outlet
  asset; ``outlet_events[alias].add(Asset(...), extra={...})`` attaches an event to an outlet alias (it is
  recorded as an event of that asset). Read by the task process when the try succeeds
  (:func:`events_to_record`).
* ``triggering_asset_events[asset]`` (or ``[uri]``): the events an ``asset_triggered`` run consumed, as
  :class:`AssetEventInfo`, oldest first (empty for other runs).
* ``inlet_events[asset]``: the asset's recorded events, oldest first, fetched when first read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from headrace.authoring.assets import Asset, AssetAlias, BaseAsset


class OutletEventAccessor:
    """What a try says about one outlet: the event's ``extra``, and for an alias the events added to it."""

    def __init__(self, key: BaseAsset) -> None:
        self.key = key
        self.extra: dict[str, Any] = {}
        """The extra of the event recorded for this asset (a JSON-able dict)."""
        self.asset_alias_events: list[tuple[Asset, dict[str, Any]]] = []

    def add(self, asset: Asset, extra: Mapping[str, Any] | None = None) -> None:
        """Attach an event of ``asset`` (with ``extra``) to this alias. Raises ``TypeError`` on an asset's
        accessor or for something that is not an ``Asset``."""
        if not isinstance(self.key, AssetAlias):
            raise TypeError(f"outlet_events[{self.key!r}].add(): only an AssetAlias takes added events")
        if not isinstance(asset, Asset):
            raise TypeError(f"outlet_events[alias].add() takes an Asset, got {type(asset).__name__}")
        self.asset_alias_events.append((asset, dict(extra or {})))

    def __repr__(self) -> str:
        return f"OutletEventAccessor(key={self.key!r}, extra={self.extra!r})"


class OutletEventAccessors(Mapping[BaseAsset, OutletEventAccessor]):
    """``context["outlet_events"]``: an accessor per asset or alias, created on first use."""

    def __init__(self) -> None:
        self._accessors: dict[BaseAsset, OutletEventAccessor] = {}

    def __getitem__(self, key: BaseAsset) -> OutletEventAccessor:
        if not isinstance(key, (Asset, AssetAlias)):
            raise KeyError(f"outlet_events takes an Asset or AssetAlias, got {key!r}")
        if key not in self._accessors:
            self._accessors[key] = OutletEventAccessor(key)
        return self._accessors[key]

    def __iter__(self) -> Iterator[BaseAsset]:
        return iter(self._accessors)

    def __len__(self) -> int:
        return len(self._accessors)


def events_to_record(outlets: Iterable[BaseAsset], accessors: OutletEventAccessors) -> list[dict[str, Any]]:
    """The asset events a successful try of a task with these ``outlets`` records (the supervisor writes them
    with the success): one per outlet asset, one per event added to an outlet alias."""
    events: list[dict[str, Any]] = []
    for outlet in outlets:
        accessor = accessors[outlet]
        if isinstance(outlet, Asset):
            events.append(_event(outlet, accessor.extra, None))
        elif isinstance(outlet, AssetAlias):
            events.extend(_event(asset, extra, outlet) for asset, extra in accessor.asset_alias_events)
    return events


def _event(asset: Asset, extra: Mapping[str, Any], alias: AssetAlias | None) -> dict[str, Any]:
    return {
        "name": asset.name,
        "uri": asset.uri,
        "group": asset.group,
        "asset_extra": asset.extra,
        "extra": dict(extra),
        "alias": alias.name if alias else None,
        "alias_group": alias.group if alias else None,
    }


@dataclass(frozen=True)
class AssetEventInfo:
    """One recorded asset event (Airflow's ``AssetEvent`` as a task sees it)."""

    id: int
    asset: Asset
    extra: dict[str, Any]
    timestamp: datetime
    """When it was recorded (UTC-aware)."""
    source_dag_id: str | None = None
    """The producing task's DAG (None: an event from outside)."""
    source_task_id: str | None = None
    source_run_id: str | None = None
    source_map_index: int = -1
    source_alias: str | None = None
    """The alias the producing task attached it to, if any."""
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AssetEventInfo:
        """From the JSON-able dict the runtime sends (``id``, ``name``, ``uri``, ``group``, ``extra``,
        ``timestamp`` ISO 8601, ``source_*``)."""
        stamp = d["timestamp"]
        return cls(
            id=int(d["id"]),
            asset=Asset(name=d["name"], uri=d["uri"], group=d.get("group") or "asset"),
            extra=dict(d.get("extra") or {}),
            timestamp=stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp),
            source_dag_id=d.get("source_dag_id"),
            source_task_id=d.get("source_task_id"),
            source_run_id=d.get("source_run_id"),
            source_map_index=int(d.get("source_map_index", -1)),
            source_alias=d.get("source_alias"),
            data=dict(d),
        )


def _key_matches(key: Any, asset: Asset) -> bool:
    if isinstance(key, Asset):
        return key.key == asset.key
    if isinstance(key, str):
        return key in (asset.uri, asset.name)
    return False


class TriggeringAssetEvents(Mapping[Any, list[AssetEventInfo]]):
    """``context["triggering_asset_events"]``: the events that triggered this run, by asset (an ``Asset``, or
    its URI or name), oldest first. A missing asset gives an empty list; iterating gives the assets."""

    def __init__(self, events: Iterable[AssetEventInfo]) -> None:
        self._events = sorted(events, key=lambda e: (e.timestamp, e.id))

    def __getitem__(self, key: Any) -> list[AssetEventInfo]:
        return [e for e in self._events if _key_matches(key, e.asset)]

    def __iter__(self) -> Iterator[Asset]:
        seen: dict[Any, Asset] = {}
        for e in self._events:
            seen.setdefault(e.asset.key, e.asset)
        return iter(seen.values())

    def __len__(self) -> int:
        return len({e.asset.key for e in self._events})


class InletEventsAccessor(Mapping[Any, list[AssetEventInfo]]):
    """``context["inlet_events"]``: ``inlet_events[asset]`` lists the asset's events, oldest first, fetched
    through ``fetch(name, uri)`` when first read (the task process asks its supervisor). Iterating gives the
    task's inlet assets."""

    def __init__(self, inlets: Iterable[BaseAsset], fetch: Callable[[str, str], list[dict[str, Any]]]) -> None:
        self._inlets = [i for i in inlets if isinstance(i, Asset)]
        self._fetch = fetch
        self._cache: dict[Any, list[AssetEventInfo]] = {}

    def __getitem__(self, key: Any) -> list[AssetEventInfo]:
        asset = key if isinstance(key, Asset) else next((a for a in self._inlets if _key_matches(key, a)), None)
        if asset is None:
            raise KeyError(f"{key!r} is not an inlet asset of this task")
        if asset.key not in self._cache:
            self._cache[asset.key] = [AssetEventInfo.from_dict(d) for d in self._fetch(asset.name, asset.uri)]
        return self._cache[asset.key]

    def __iter__(self) -> Iterator[Asset]:
        return iter(self._inlets)

    def __len__(self) -> int:
        return len(self._inlets)


__all__ = [
    "AssetEventInfo",
    "InletEventsAccessor",
    "OutletEventAccessor",
    "OutletEventAccessors",
    "TriggeringAssetEvents",
    "events_to_record",
]
