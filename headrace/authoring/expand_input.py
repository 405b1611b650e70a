"""What a mapped task expands over: ``expand(**kwargs)`` and ``expand_kwargs(list)`` inputs (Airflow's).

* :class:`DictOfListsExpandInput` — ``expand(x=[1, 2], y=some_task())``: each
  argument a list, a dict (its ``(key, value)`` pairs) or an XComArg
  (``.map()`` / ``.zip()`` too). Several arguments give their cross product:
  the length is the product of the lengths, and the last argument varies
  fastest (map index ``i`` of ``x=[1, 2], y=["a", "b", "c"]`` is
  ``x[i // 3], y[i % 3]``).
* :class:`ListOfDictsExpandInput` — ``expand_kwargs([{"x": 1}, {"x": 2}])``
  or an XComArg whose value is such a list: one task instance per dict.

The scheduler never imports DAG files, so :meth:`length_spec` describes how to
count the items without the values: ``{"literal": n}`` for a literal,
``{"xcom": task_id}`` for a task's pushed value (its ``task_map`` row, or the
number of values a mapped task pushed), ``{"zip": [...], "longest": bool}``
for a zip. The task process gets the values back with :meth:`resolve`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from headrace.authoring.mapped_items import pick_items
from headrace.authoring.xcom import (
    NOTSET,
    RETURN_KEY,
    MapXComArg,
    XComArg,
    XComArgLike,
    ZipXComArg,
    find_xcom_args,
    resolve_refs,
)
from headrace.types import Context

MAPPABLE = (list, tuple, dict, XComArg, MapXComArg, ZipXComArg)
"""Types ``expand`` accepts as an argument's value."""


NOT_MAPPABLE = frozenset({"task_id", "dag", "task_group"})
"""Arguments that name the task rather than configure a try: never expanded."""


def check_mappable(owner: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` (Airflow's) naming ``name`` when ``value`` cannot be mapped over, or an XComArg
    reads a custom key (only ``return_value`` is recorded for mapping, as in Airflow)."""
    if not isinstance(value, MAPPABLE) or isinstance(value, (str, bytes)):
        raise ValueError(
            f"{owner}.expand() got an unexpected type {type(value).__name__!r} for keyword argument {name}"
        )
    for ref in find_xcom_args(value) if not isinstance(value, (list, tuple, dict)) else []:
        if ref.key != RETURN_KEY:
            raise ValueError(f"cannot map over XCom with custom key {ref.key!r} from task {ref.operator.task_id!r}")


def length_spec(value: Any) -> dict[str, Any]:
    """How to count the items of ``value`` without it (see the module docstring)."""
    if isinstance(value, XComArg):
        return {"xcom": value.operator.task_id}
    if isinstance(value, MapXComArg):
        return length_spec(value.arg)
    if isinstance(value, ZipXComArg):
        return {"zip": [length_spec(a) for a in value.args], "longest": value.fillvalue is not NOTSET}
    return {"literal": len(value)}


def _full_value(value: Any, context: Context) -> Sequence[Any]:
    """The items of one expand argument: a literal as written (a dict as pairs), an XComArg's value."""
    if isinstance(value, (XComArg, MapXComArg, ZipXComArg)):
        value = value.resolve(context)
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)) or isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    raise TypeError(f"cannot map over a {type(value).__name__}: expand() takes lists and dicts")


@dataclass(frozen=True)
class DictOfListsExpandInput:
    """``expand(**value)``: the cross product of the arguments' items."""

    value: dict[str, Any]
    """Argument name → list, dict or XComArg, in the order written."""

    def references(self) -> list[XComArg]:
        """The plain XComArgs the arguments read."""
        return [ref for v in self.value.values() for ref in find_xcom_args(v)]

    def length_spec(self) -> dict[str, Any]:
        """``{"type": "dict_of_lists", "lengths": {name: spec}}`` (see :func:`length_spec`)."""
        return {"type": "dict_of_lists", "lengths": {k: length_spec(v) for k, v in self.value.items()}}

    def literal_length(self) -> int | None:
        """The number of task instances when every argument is a literal, else None."""
        total = 1
        for v in self.value.values():
            if not isinstance(v, (list, tuple, dict)):
                return None
            total *= len(v)
        return total

    def resolve(self, context: Context, map_index: int) -> dict[str, Any]:
        """The arguments of map index ``map_index`` (read item by item when the running ``ti`` can:
        :func:`~headrace.authoring.mapped_items.pick_items`). Raises ``IndexError`` past the end."""
        picked = pick_items(list(self.value.values()), context, map_index)
        if picked is not None:
            return dict(zip(self.value, picked, strict=True))
        items = {k: _full_value(v, context) for k, v in self.value.items()}
        out: dict[str, Any] = {}
        index = map_index
        for name in reversed(list(items)):
            length = len(items[name])
            if length < 1:
                raise IndexError(f"argument {name!r} has no items")
            out[name] = items[name][index % length]
            index //= length
        if index:
            raise IndexError(f"map index {map_index} is past the end of the expanded arguments")
        return {k: out[k] for k in self.value}


@dataclass(frozen=True)
class ListOfDictsExpandInput:
    """``expand_kwargs(value)``: one task instance per dict of arguments."""

    value: Sequence[dict[str, Any]] | XComArgLike
    """A list of dicts (their values may be XComArgs), or an XComArg whose value is one."""

    def references(self) -> list[XComArg]:
        """The plain XComArgs read (the value's, or those inside the dicts)."""
        return find_xcom_args(self.value if not isinstance(self.value, tuple) else list(self.value))

    def length_spec(self) -> dict[str, Any]:
        """``{"type": "list_of_dicts", "length": spec}`` (see :func:`length_spec`)."""
        return {"type": "list_of_dicts", "length": length_spec(self.value)}

    def literal_length(self) -> int | None:
        """The number of dicts when the value is a literal list, else None."""
        return len(self.value) if isinstance(self.value, (list, tuple)) else None

    def resolve(self, context: Context, map_index: int) -> dict[str, Any]:
        """The arguments of map index ``map_index``. Raises ``TypeError`` for an item that is not a dict
        with str keys."""
        picked = pick_items([self.value], context, map_index) if not isinstance(self.value, (list, tuple)) else None
        item = picked[0] if picked is not None else _full_value(self.value, context)[map_index]
        if not isinstance(item, dict) or not all(isinstance(k, str) for k in item):
            raise TypeError(f"expand_kwargs() expects a list of dicts with str keys, item {map_index} is {item!r}")
        resolved: dict[str, Any] = resolve_refs(item, context)
        return resolved


ExpandInput = DictOfListsExpandInput | ListOfDictsExpandInput
"""Either kind of expand input."""


def pulled_names(expand_input: ExpandInput, resolved: dict[str, Any]) -> set[str]:
    """The names in ``resolved`` (one map index's arguments) whose values were pulled from XCom, not written
    in the DAG file: a task must not render those as templates (Airflow renders only what the author wrote)."""
    pulled = (XComArg, MapXComArg, ZipXComArg)
    if isinstance(expand_input, DictOfListsExpandInput):
        return {k for k, v in expand_input.value.items() if isinstance(v, pulled) and k in resolved}
    if isinstance(expand_input.value, pulled):
        return set(resolved)
    return {k for item in expand_input.value for k, v in item.items() if isinstance(v, pulled) and k in resolved}


def prevent_duplicates(given: dict[str, Any], mapped: dict[str, Any], *, fail_reason: str) -> None:
    """Raise ``TypeError`` (Airflow's wording) naming an argument both in ``given`` and ``mapped``."""
    duplicated = [name for name in mapped if name in given]
    if len(duplicated) == 1:
        raise TypeError(f"{fail_reason} argument: {duplicated[0]}")
    if duplicated:
        raise TypeError(f"{fail_reason} arguments: {', '.join(duplicated)}")


def check_expand_kwargs(kwargs: Any) -> Any:
    """Return ``kwargs`` if ``expand_kwargs`` accepts it: an XComArg, or a list of dicts (or XComArgs).

    Raises ``TypeError`` with Airflow's wording otherwise.
    """
    if isinstance(kwargs, (XComArg, MapXComArg, ZipXComArg)):
        return kwargs
    if not isinstance(kwargs, (list, tuple)):
        raise TypeError(f"expected XComArg or list[dict], not {type(kwargs).__name__}")
    for item in kwargs:
        if not isinstance(item, (dict, XComArg, MapXComArg, ZipXComArg)):
            raise TypeError(f"expected XComArg or list[dict], not list[{type(item).__name__}]")
        if isinstance(item, dict):
            bad = [k for k in item if k in NOT_MAPPABLE]
            if bad:
                raise TypeError(f"unmappable or already specified argument: {bad[0]}")
    return list(kwargs)


def mapped_over(tasks: Sequence[Any], task_id: str) -> bool:
    """Whether a mapped task (or mapped task group) of ``tasks`` maps over ``task_id``'s ``return_value``."""
    return task_id in mapped_over_ids(tasks)


def mapped_over_ids(tasks: Iterable[Any]) -> frozenset[str]:
    """The ids of the tasks whose ``return_value`` a mapped task (or mapped task group) of ``tasks`` maps over."""
    ids: set[str] = set()
    for task in tasks:
        for expand_input in [task.expand_input, *(g.expand_input for g in task.task_groups_chain())]:
            if expand_input is not None:
                ids.update(ref.operator.task_id for ref in expand_input.references())
    return frozenset(ids)


def map_length_of(value: Any, *, task_id: str, max_map_length: int) -> tuple[int, list[str] | None]:
    """The length (and a dict's keys) of ``value``, pushed by ``task_id`` for a mapped task to map over.

    Raises ``ValueError`` with Airflow's reasons: nothing pushed, not a list or dict, longer than
    ``max_map_length`` (``core.max_map_length``).
    """
    if value is None:
        raise ValueError(f"task {task_id!r} did not push XCom for task mapping (it returned None)")
    if not isinstance(value, (list, tuple, dict)):
        raise ValueError(f"task {task_id!r} pushed an unmappable return type {type(value).__name__!r} for task mapping")
    if len(value) > max_map_length:
        raise ValueError(
            f"task {task_id!r} pushed an unmappable return value length: {len(value)} > {max_map_length} "
            "(core.max_map_length)"
        )
    return len(value), [str(k) for k in value] if isinstance(value, dict) else None


__all__ = [
    "MAPPABLE",
    "NOT_MAPPABLE",
    "DictOfListsExpandInput",
    "ExpandInput",
    "ListOfDictsExpandInput",
    "check_expand_kwargs",
    "check_mappable",
    "length_spec",
    "map_length_of",
    "mapped_over",
    "mapped_over_ids",
    "prevent_duplicates",
]
