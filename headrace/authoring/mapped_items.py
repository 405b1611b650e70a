"""One map index's items of what a mapped task expands over, read without pulling whole values.

A mapped task instance needs item ``i`` of each argument it expands over. When the running task instance
can ask for single items (its ``ti`` has ``mapped_items``: the task process's, which asks its supervisor,
:mod:`headrace.supervisor.mapped_items`), :func:`pick_items` sends one spec per argument
(:func:`item_spec`) and builds the arguments from the items it gets back: a literal's item is read here,
an XCom item comes decoded, ``.map()`` functions are applied to it, a zip becomes its tuple (the fill value
past a shorter value's end). Otherwise — another ``ti`` (``headrace tasks test``, callbacks), or an answer
of None — the caller reads whole values as before (:meth:`ExpandInput.resolve`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from headrace.authoring.xcom import NOTSET, MapXComArg, XComArg, ZipXComArg, items_of
from headrace.types import Context


@dataclass(frozen=True)
class PickedItem:
    """One argument's item at a map index, as the supervisor found it."""

    index: int
    """Its position in the argument's items."""
    value: Any = NOTSET
    """An XCom item, decoded (NOTSET for a literal or a zip)."""
    parts: tuple[PickedItem | None, ...] | None = None
    """A zip: one item per zipped value (None past its end: the fill value)."""


def item_spec(value: Any, context: Context) -> dict[str, Any] | None:
    """How the supervisor counts and finds the items of one expand argument (see ``GetMappedItems``); None
    when it cannot (a value of a task in the running task's own mapped group is read whole)."""
    if isinstance(value, XComArg):
        op = value.operator
        group = op.mapped_group()
        here = context.get("task")
        if group is not None and here is not None and group in here.task_groups_chain():
            return None
        return {"xcom": op.task_id, "key": value.key, "mapped": group is not None or bool(op.is_mapped)}
    if isinstance(value, MapXComArg):
        return item_spec(value.arg, context)
    if isinstance(value, ZipXComArg):
        parts = [item_spec(a, context) for a in value.args]
        if any(p is None for p in parts):
            return None
        return {"zip": parts, "longest": value.fillvalue is not NOTSET}
    if isinstance(value, dict):
        return {"literal": len(value)}
    if isinstance(value, (list, tuple)):
        return {"literal": len(value)}
    return None


Decode = Callable[[str, str, str, int], Any]
"""``decode(value_json, task_id, key, map_index)``: a stored XCom value, decoded by the XCom backend."""


def read_item(wire: dict[str, Any], decode: Decode) -> PickedItem:
    """A :class:`PickedItem` from one item of a ``MappedItems`` answer, its XCom value decoded (a whole value
    is decoded and indexed). Raises ``KeyError`` / ``TypeError`` for an item of another shape."""
    index = int(wire["index"])
    if "parts" in wire:
        parts = tuple(None if p is None else read_item(p, decode) for p in wire["parts"])
        return PickedItem(index, parts=parts)
    if "value_json" not in wire:
        return PickedItem(index)
    value = decode(str(wire["value_json"]), str(wire["task_id"]), str(wire["key"]), int(wire["map_index"]))
    if wire.get("whole"):
        value = items_of(value, f"XCom {wire['key']!r} of task {wire['task_id']!r}")[index]
    return PickedItem(index, value=value)


def _literal_items(value: Any) -> Sequence[Any]:
    return list(value.items()) if isinstance(value, dict) else value


def build(value: Any, picked: PickedItem) -> Any:
    """The item of expand argument ``value`` that ``picked`` locates."""
    if isinstance(value, XComArg):
        return picked.value
    if isinstance(value, MapXComArg):
        return value.apply(build(value.arg, picked))
    if isinstance(value, ZipXComArg):
        parts = picked.parts or ()
        return tuple(value.fillvalue if p is None else build(a, p) for a, p in zip(value.args, parts, strict=True))
    return _literal_items(value)[picked.index]


def pick_items(values: Sequence[Any], context: Context, map_index: int) -> list[Any] | None:
    """The items of ``values`` (expand arguments, in order) at ``map_index``, read one by one through
    ``context["ti"].mapped_items``; None when the caller must read whole values (see the module docstring)."""
    ask = getattr(context.get("ti"), "mapped_items", None)
    if ask is None or map_index < 0:
        return None
    specs = [item_spec(v, context) for v in values]
    if any(s is None for s in specs) or all("literal" in s for s in specs if s is not None):
        return None  # all literal: nothing to pull
    picked: list[PickedItem] | None = ask(specs, map_index)
    if picked is None or len(picked) != len(values):
        return None
    return [build(v, p) for v, p in zip(values, picked, strict=True)]


__all__ = ["Decode", "PickedItem", "build", "item_spec", "pick_items", "read_item"]
