"""The supervisor's answer to ``GetMappedItems``: the one item a map index reads, not the whole values.

A mapped task instance maps over an upstream task's value (``add.expand(x=make_list())``), a ``.map()`` or
``.zip()`` of such values, the cross product of several arguments, or ``expand_kwargs`` of a list of dicts.
Without this request its task process would pull every value whole and index it; here the supervisor:

1. counts each argument's items, as the scheduler's expansion did: a literal's length is given; an
   unmapped task's value is read once (``map_index = -1``) and its items found in the stored JSON; a mapped
   task's items are the values its instances pushed, ordered by map index (counted, then the one row read by its position);
   a zip takes the shortest (the longest with a fill value);
2. splits the map index over the arguments' lengths (the last argument varying fastest);
3. sends each XCom item in stored form: one row of a mapped task; for an unmapped task the item cut out of
   the stored list (or the ``(key, value)`` pair of a stored dict), re-encoded as JSON.

Cutting an item out needs the default encoding (:mod:`headrace.authoring.xcom_serde`): a list is a JSON
array of encoded items, a tuple or a dict with other keys an envelope around them. Nothing is decoded:
the supervisor never imports a class a value names. With a custom XCom backend (the request's ``pick`` is
false) an unmapped task's stored value is sent whole, its length taken from ``task_map``, and the task
process has the backend read it. Anything else — a length that cannot be told, a value that is not a list
or dict, an index past the end — answers ``items = None``: the task process then reads whole values as
before, and raises the same errors it always did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select

from headrace.authoring.xcom_serde import TAG
from headrace.db.engine import Database
from headrace.db.models import TaskMap, XCom
from headrace.storage.xcoms import XComObjects
from headrace.supervisor.protocol import GetMappedItems, MappedItems

if TYPE_CHECKING:  # task_requests dispatches to this module
    from headrace.supervisor.store import TryTarget


@dataclass
class _Source:
    """What one task's value holds, read at most once per request."""

    length: int
    mapped: bool = False
    """A mapped task: its items are the values its instances pushed, by map index (counted, not read)."""
    items: list[Any] | None = None
    """An unmapped task's value in the default encoding: its items, each in encoded form."""
    whole: str | None = None
    """An unmapped task's stored value, sent whole (a custom backend)."""


def _encoded_items(data: Any) -> list[Any] | None:
    """The items of a stored value, each in encoded form; None when it is not a list or dict."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        return None
    tag = data.get(TAG)
    if tag is None:  # a dict with str keys: its (key, value) pairs, as tuples
        return [{TAG: "tuple", "v": [k, v]} for k, v in data.items()]
    raw = data.get("v")
    if tag == "tuple" and isinstance(raw, list):
        return raw
    if tag == "dict" and isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 for p in raw):
        return [{TAG: "tuple", "v": p} for p in raw]
    return None


_OF_TASK = (
    XCom.dag_run_id == bindparam("dag_run_pk"),
    XCom.task_id == bindparam("task_id"),
    XCom.key == bindparam("key"),
)
_UNMAPPED_VALUE = select(XCom.value).where(*_OF_TASK, XCom.map_index == -1)
_MAPPED_COUNT = select(func.count()).select_from(XCom).where(*_OF_TASK, XCom.map_index >= 0)
_MAPPED_NTH = (
    select(XCom.map_index, XCom.value)
    .where(*_OF_TASK, XCom.map_index >= 0)
    .order_by(XCom.map_index)
    .limit(1)
    .offset(bindparam("nth"))
)
_LENGTH = select(TaskMap.length).where(
    TaskMap.dag_run_id == bindparam("dag_run_pk"), TaskMap.task_id == bindparam("task_id"), TaskMap.map_index == -1
)
"""Statements built once, run with parameters on the session's connection (Core: no ORM work per request)."""


class _Reader:
    def __init__(self, conn: Connection, target: TryTarget, pick: bool, xcoms: XComObjects | None) -> None:
        self.conn = conn
        self.target = target
        self.pick = pick
        self.xcoms = xcoms
        self.sources: dict[tuple[str, str, bool], _Source | None] = {}

    def _scalar(self, statement: Any, task_id: str, key: str = "return_value", **more: Any) -> Any:
        params = {"dag_run_pk": self.target.dag_run_pk, "task_id": task_id, "key": key, **more}
        return self.conn.execute(statement, params).scalar()

    def resolved(self, text: str) -> str:
        """``text`` as stored, with a reference to the object store read from it."""
        return self.xcoms.resolve(text) if self.xcoms is not None else text

    def source(self, spec: Mapping[str, Any]) -> _Source | None:
        task_id, key, mapped = str(spec["xcom"]), str(spec.get("key", "return_value")), bool(spec.get("mapped"))
        ident = (task_id, key, mapped)
        if ident not in self.sources:
            self.sources[ident] = self._load(task_id, key, mapped)
        return self.sources[ident]

    def _load(self, task_id: str, key: str, mapped: bool) -> _Source | None:
        if mapped:
            return _Source(length=int(self._scalar(_MAPPED_COUNT, task_id, key) or 0), mapped=True)
        text = self._scalar(_UNMAPPED_VALUE, task_id, key)
        if text is None:
            return None
        text = self.resolved(text)
        if not self.pick:
            length = self._scalar(_LENGTH, task_id)
            return None if length is None else _Source(length=int(length), whole=text)
        try:
            items = _encoded_items(json.loads(text))
        except ValueError:
            return None
        return None if items is None else _Source(length=len(items), items=items)

    def length(self, spec: Mapping[str, Any]) -> int | None:
        if "literal" in spec:
            return int(spec["literal"])
        if "xcom" in spec:
            source = self.source(spec)
            return None if source is None else source.length
        lengths = [self.length(s) for s in spec["zip"]]
        if any(n is None for n in lengths):
            return None
        known = [n for n in lengths if n is not None]
        return (max if spec.get("longest") else min)(known, default=0)

    def item(self, spec: Mapping[str, Any], index: int) -> dict[str, Any] | None:
        if "literal" in spec:
            return {"index": index}
        if "zip" in spec:
            parts: list[dict[str, Any] | None] = []
            for part in spec["zip"]:
                length = self.length(part)
                if length is None:
                    return None
                if index >= length:
                    parts.append(None)  # past its end: the zip's fill value
                    continue
                item = self.item(part, index)
                if item is None:
                    return None
                parts.append(item)
            return {"index": index, "parts": parts}
        source = self.source(spec)
        if source is None:
            return None
        out: dict[str, Any] = {"index": index, "task_id": spec["xcom"], "key": spec.get("key", "return_value")}
        if source.mapped:  # the index-th value pushed, by map index (an index that pushed nothing has none)
            params = {"dag_run_pk": self.target.dag_run_pk, "task_id": out["task_id"], "key": out["key"]}
            row = self.conn.execute(_MAPPED_NTH, {**params, "nth": index}).first()
            if row is None:
                return None
            return {**out, "map_index": row.map_index, "value_json": self.resolved(row.value)}
        if source.whole is not None:
            return {**out, "map_index": -1, "value_json": source.whole, "whole": True}
        assert source.items is not None
        return {**out, "map_index": -1, "value_json": json.dumps(source.items[index], separators=(",", ":"))}


def split_map_index(map_index: int, lengths: Sequence[int]) -> list[int] | None:
    """Each argument's item index at ``map_index`` of the cross product of ``lengths`` (the last varying
    fastest, as the expansion counts); None past the end or when an argument has no items."""
    out: list[int] = []
    index = map_index
    for length in reversed(lengths):
        if length < 1:
            return None
        out.append(index % length)
        index //= length
    return None if index or map_index < 0 else out[::-1]


def get_mapped_items(
    db: Database, target: TryTarget, message: GetMappedItems, xcoms: XComObjects | None = None
) -> MappedItems:
    """Answer ``GetMappedItems`` (see the module docstring); ``items`` None sends the task back to whole values.
    ``xcoms``: values in the object store are read from it."""
    with db.read_session() as session:
        reader = _Reader(session.connection(), target, message.pick, xcoms)
        lengths = [reader.length(spec) for spec in message.specs]
        if any(n is None for n in lengths):
            return MappedItems(items=None)
        indexes = split_map_index(message.map_index, [n for n in lengths if n is not None])
        if indexes is None:
            return MappedItems(items=None)
        items = [reader.item(spec, i) for spec, i in zip(message.specs, indexes, strict=True)]
    if any(item is None for item in items):
        return MappedItems(items=None)
    return MappedItems(items=[item for item in items if item is not None])


__all__ = ["get_mapped_items", "split_map_index"]
