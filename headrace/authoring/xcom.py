"""XCom: values passed between tasks, and references to them (``XComArg``).

Values are stored as JSON text, made by the deployment's XCom backend
(:mod:`headrace.authoring.xcom_backend`, ``core.xcom_backend``). The default
backend tags types JSON lacks so they come back as they went in
(:mod:`headrace.authoring.xcom_serde`): datetimes, Decimal, UUID, paths,
tuples, sets, numpy values, pandas DataFrames, dataclasses, pydantic models….
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from headrace.authoring.xcom_backend import BaseXCom
from headrace.exceptions import XComError
from headrace.types import Context

if TYPE_CHECKING:
    from headrace.authoring.task import BaseOperator

RETURN_KEY = "return_value"
"""The XCom key a task's return value is pushed under."""

DEFAULT_MAX_BYTES = 48 * 1024
"""A reasonable default for ``max_bytes`` (the deployment's ``xcom max size`` overrides it)."""


class _NotSet:
    """The type of :data:`NOTSET`."""

    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()
"""No value given (``zip``'s ``fillvalue``): told apart from ``None``, which is a value."""


class XComArg:
    """A reference to an XCom of ``operator`` (key ``return_value`` unless given).

    Passing an XComArg to a ``@task`` function makes ``operator`` upstream of the
    task and is replaced by the value at run time. ``arg["k"]`` refers to key
    ``k`` (pushed by a task with ``multiple_outputs``). ``>>`` / ``<<`` act on
    ``operator``.
    """

    def __init__(self, operator: BaseOperator, key: str = RETURN_KEY) -> None:
        self.operator = operator
        self.key = key

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XComArg) and other.operator is self.operator and other.key == self.key

    def __hash__(self) -> int:
        return hash((id(self.operator), self.key))

    def __getitem__(self, key: str) -> XComArg:
        return XComArg(self.operator, key)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("an XComArg is not iterable; its value only exists when the task runs")

    def map(self, f: Callable[[Any], Any]) -> MapXComArg:
        """A reference to this value with ``f`` applied to each item (Airflow's ``XComArg.map``).

        ``f`` runs in the task that uses the result, per item, when the item is read. Mapped over with
        ``expand``, it gives one task instance per item.
        """
        return MapXComArg(self, (f,))

    def zip(self, *others: XComArgLike, fillvalue: Any = NOTSET) -> ZipXComArg:
        """A reference to tuples of this value's items and ``others``' (Airflow's ``XComArg.zip``).

        As ``zip``: as long as the shortest; with ``fillvalue`` as the longest, missing items filled.
        Raises ``TypeError`` if an other is not an XComArg.
        """
        return ZipXComArg((self, *others), fillvalue=fillvalue)

    def resolve(self, context: Context) -> Any:
        """Return the referenced value, pulled through ``context["ti"]``.

        The value of a mapped task is the list of its task instances' values, ordered by map index
        (Airflow's lazy sequence), except for a task of the same mapped task group as the running task:
        then it is the value of the same map index.
        """
        ti = context["ti"]
        op = self.operator
        group = op.mapped_group()
        if group is None and not op.is_mapped:
            return ti.xcom_pull(task_ids=op.task_id, key=self.key)
        here = context.get("task")
        map_index = int(context.get("map_index", -1))
        if group is not None and map_index >= 0 and here is not None and group in here.task_groups_chain():
            return ti.xcom_pull(task_ids=op.task_id, key=self.key, map_indexes=map_index)
        values = ti.xcom_pull(task_ids=op.task_id, key=self.key, map_indexes=None)
        return [] if values is None else list(values) if isinstance(values, list) else [values]

    def references(self) -> list[XComArg]:
        """The plain XComArgs this one reads (itself)."""
        return [self]

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        """``operator.set_downstream(other, edge_modifier)`` (``edge_modifier``: a ``Label`` or None)."""
        self.operator.set_downstream(other, edge_modifier=edge_modifier)

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        """``operator.set_upstream(other, edge_modifier)`` (``edge_modifier``: a ``Label`` or None)."""
        self.operator.set_upstream(other, edge_modifier=edge_modifier)

    # setup/teardown (Airflow's XComArg forwards these to its operator)

    @property
    def is_setup(self) -> bool:
        """Whether the operator is a setup task."""
        return bool(self.operator.is_setup)

    @property
    def is_teardown(self) -> bool:
        """Whether the operator is a teardown task."""
        return bool(self.operator.is_teardown)

    def as_setup(self) -> XComArg:
        """Mark the operator a setup task; return this XComArg."""
        self.operator.as_setup()
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> XComArg:
        """Mark the operator a teardown task (see ``BaseOperator.as_teardown``); return this XComArg."""
        self.operator.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self) -> Any:
        return self.operator.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.operator.__exit__(None, None, None)

    def __rshift__(self, other: Any) -> Any:
        self.operator.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.operator.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> XComArg:
        self.operator.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> XComArg:
        self.operator.set_downstream(other)
        return self


class MapXComArg:
    """``arg.map(f)``: the items of ``arg`` with ``f`` applied, each when it is read (see :meth:`XComArg.map`)."""

    def __init__(self, arg: XComArg, callables: tuple[Callable[[Any], Any], ...]) -> None:
        for f in callables:
            if not callable(f):
                raise TypeError(f"XComArg.map() takes a function, got {f!r}")
        self.arg = arg
        self.callables = callables

    def __repr__(self) -> str:
        return f"{self.arg!r}.map({', '.join(getattr(f, '__name__', repr(f)) for f in self.callables)})"

    def map(self, f: Callable[[Any], Any]) -> MapXComArg:
        """Apply ``f`` too, after the functions already given."""
        return MapXComArg(self.arg, (*self.callables, f))

    def zip(self, *others: XComArgLike, fillvalue: Any = NOTSET) -> ZipXComArg:
        """Tuples of this value's items and ``others``' (see :meth:`XComArg.zip`)."""
        return ZipXComArg((self, *others), fillvalue=fillvalue)

    def apply(self, item: Any) -> Any:
        """``item`` through every function, in order."""
        for f in self.callables:
            item = f(item)
        return item

    def resolve(self, context: Context) -> Sequence[Any]:
        """The items of ``arg``'s value, each passed through the functions when read (a lazy sequence)."""
        return _MappedItems(items_of(self.arg.resolve(context), repr(self.arg)), self)

    def references(self) -> list[XComArg]:
        """The plain XComArgs this one reads."""
        return [self.arg]


class ZipXComArg:
    """``a.zip(b, …)``: tuples of the items of several values (see :meth:`XComArg.zip`)."""

    def __init__(self, args: Sequence[XComArgLike], *, fillvalue: Any = NOTSET) -> None:
        for arg in args:
            if not isinstance(arg, (XComArg, MapXComArg, ZipXComArg)):
                raise TypeError(f"XComArg.zip() takes XComArgs, got {arg!r}")
        self.args = tuple(args)
        self.fillvalue = fillvalue

    def __repr__(self) -> str:
        return f"zip({', '.join(repr(a) for a in self.args)})"

    def map(self, f: Callable[[Any], Any]) -> MapXComArg:
        """Not supported on a zip (as in Airflow, ``map`` applies to a task's value)."""
        raise TypeError("XComArg.zip(...).map() is not supported: map the values before zipping them")

    def resolve(self, context: Context) -> list[tuple[Any, ...]]:
        """The tuples: as long as the shortest value, or the longest when ``fillvalue`` was given."""
        values = [items_of(a.resolve(context), repr(a)) for a in self.args]
        if self.fillvalue is NOTSET:
            return list(zip(*values, strict=False))
        longest = max((len(v) for v in values), default=0)
        return [tuple(v[i] if i < len(v) else self.fillvalue for v in values) for i in range(longest)]

    def references(self) -> list[XComArg]:
        """The plain XComArgs this one reads."""
        return [r for a in self.args for r in a.references()]


XComArgLike = XComArg | MapXComArg | ZipXComArg
"""What ``expand`` and ``expand_kwargs`` accept besides literal lists and dicts."""


def items_of(value: Any, what: str) -> Sequence[Any]:
    """``value`` as a sequence to index: a list as it is, a dict as its ``(key, value)`` pairs.

    Raises ``TypeError`` naming ``what`` for anything else."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    raise TypeError(f"{what} is not a list or dict, cannot map over it: {type(value).__name__}")


class _MappedItems(Sequence[Any]):
    """The items of a value with a :class:`MapXComArg`'s functions applied on read."""

    def __init__(self, items: Sequence[Any], arg: MapXComArg) -> None:
        self._items = items
        self._arg = arg

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._arg.apply(v) for v in self._items[index]]
        return self._arg.apply(self._items[index])

    def __repr__(self) -> str:
        return f"<{len(self)} items of {self._arg!r}>"


class ExpandInputLike(Protocol):
    """What a :class:`MappedArgument` reads from (``headrace.authoring.expand_input``)."""

    def references(self) -> list[XComArg]:
        """The plain XComArgs the input reads."""
        ...

    def resolve(self, context: Context, map_index: int) -> dict[str, Any]:
        """The keyword arguments of map index ``map_index``."""
        ...


class MappedArgument:
    """An argument of a mapped task group's function (``my_group.expand(x=[1, 2])``): inside the group it is
    the value of ``name`` at the running task instance's map index."""

    def __init__(self, name: str, expand_input: ExpandInputLike) -> None:
        self.name = name
        self.expand_input = expand_input

    def __repr__(self) -> str:
        return f"MappedArgument({self.name!r})"

    def resolve(self, context: Context) -> Any:
        """The value for ``context["map_index"]``. Raises ``XComError`` outside a mapped task instance."""
        map_index = int(context.get("map_index", -1))
        if map_index < 0:
            raise XComError(f"the mapped argument {self.name!r} is only known in a mapped task instance")
        return self.expand_input.resolve(context, map_index)[self.name]


class DagParam:
    """A reference to DAG param ``name``, resolved from ``context["params"]`` at run time.

    ``@dag`` functions receive these for their parameters, as in Airflow.
    """

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    def __repr__(self) -> str:
        return f"DagParam({self.name!r})"

    def resolve(self, context: Context) -> Any:
        """The param's value in this run (run conf over DAG params), else the default."""
        return context.get("params", {}).get(self.name, self.default)


def find_xcom_args(value: Any) -> list[XComArg]:
    """The XComArgs inside ``value`` (looking into lists, tuples, sets and dict values, maps and zips, and the
    inputs of a mapped task group's arguments)."""
    if isinstance(value, XComArg):
        return [value]
    if isinstance(value, (MapXComArg, ZipXComArg)):
        return value.references()
    if isinstance(value, MappedArgument):
        return value.expand_input.references()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [a for item in value for a in find_xcom_args(item)]
    if isinstance(value, dict):
        return [a for item in value.values() for a in find_xcom_args(item)]
    return []


def resolve_refs(value: Any, context: Context) -> Any:
    """Replace every XComArg / DagParam (and map, zip, mapped argument) inside ``value`` by its value at run time."""
    if isinstance(value, (XComArg, DagParam, MapXComArg, ZipXComArg, MappedArgument)):
        return value.resolve(context)
    if isinstance(value, list):
        return [resolve_refs(v, context) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_refs(v, context) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(resolve_refs(v, context) for v in value)
    if isinstance(value, dict):
        return {k: resolve_refs(v, context) for k, v in value.items()}
    return value


def xcoms_for_result(task: BaseOperator, value: Any) -> list[tuple[str, Any]]:
    """The ``(key, value)`` XComs to push for what ``task.execute`` returned.

    Nothing for ``None``; otherwise ``return_value``, and with
    ``task.multiple_outputs`` one XCom per dict key too. Raises ``XComError``
    if ``multiple_outputs`` is set and the value is not a dict with str keys.
    """
    if value is None:
        return []
    pushes = [(RETURN_KEY, value)]
    if task.multiple_outputs:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise XComError(
                f"task {task.task_id!r} has multiple_outputs=True, so it must return a dict "
                f"with str keys, not {type(value).__name__}"
            )
        pushes += list(value.items())
    return pushes


def serialize_xcom(
    value: Any,
    max_bytes: int,
    *,
    task_id: str = "?",
    key: str = RETURN_KEY,
    backend: type[BaseXCom] = BaseXCom,
    dag_id: str | None = None,
    run_id: str | None = None,
    map_index: int = -1,
) -> str:
    """Return ``value`` as stored: the JSON text of ``backend.serialize_value(value, …)``, at most
    ``max_bytes`` UTF-8 bytes.

    Raises ``XComError``: "XCom value of task X (key K) is not JSON serializable:
    <type>", or "... is N bytes, over the limit of M bytes (xcom max size)".
    NaN and infinities are refused too (not JSON).
    """
    try:
        data = backend.serialize_value(
            value, key=key, task_id=task_id, dag_id=dag_id, run_id=run_id, map_index=map_index
        )
        text = json.dumps(data, sort_keys=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        what = str(exc) if isinstance(exc, TypeError) else f"float {exc}"
        raise XComError(
            f"XCom value of task {task_id} (key {key}) is not JSON serializable: {what}",
            task_id=task_id,
            key=key,
        ) from None
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise XComError(
            f"XCom value of task {task_id} (key {key}) is {size} bytes, over the limit of "
            f"{max_bytes} bytes (xcom max size)",
            task_id=task_id,
            key=key,
            size=size,
            max_bytes=max_bytes,
        )
    return text


def deserialize_xcom(
    text: str, backend: type[BaseXCom] = BaseXCom, *, map_indexes: Sequence[int] | None = None, **where: Any
) -> Any:
    """Inverse of :func:`serialize_xcom`: ``backend.deserialize_value`` of the stored JSON.

    ``where``: the XCom's ``key``, ``task_id``, ``dag_id``, ``run_id`` (given to the backend).
    ``map_indexes``: ``text`` is the JSON list of a mapped task's stored values, by map index: each is
    deserialized on its own, with its ``map_index`` (a custom backend sees one XCom at a time).
    Raises ``XComError`` for text that is not valid XCom JSON or a class that cannot be imported.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise XComError(f"stored XCom is not valid: {exc}") from None
    return _deserialize_pulled(data, backend, map_indexes, where)


def deserialize_xcom_list(
    text: str,
    task_ids: Sequence[str],
    backend: type[BaseXCom] = BaseXCom,
    *,
    map_indexes: Sequence[Sequence[int] | None] | None = None,
    **where: Any,
) -> list[Any]:
    """The values of a JSON list of stored XComs (one per id in ``task_ids``; null: none) — a pull of many.

    ``map_indexes``: per task, None for one stored value, or the map indexes of a mapped task's list.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise XComError(f"stored XCom is not valid: {exc}") from None
    if not isinstance(data, list):
        raise XComError("stored XComs are not a list")
    indexes = list(map_indexes) if map_indexes is not None else [None] * len(data)
    return [
        None if item is None else _deserialize_pulled(item, backend, index, {**where, "task_id": task_id})
        for task_id, item, index in zip(task_ids, data, indexes, strict=False)
    ]


def _deserialize_pulled(
    data: Any, backend: type[BaseXCom], map_indexes: Sequence[int] | None, where: dict[str, Any]
) -> Any:
    if map_indexes is None:
        return _deserialize(data, backend, where)
    if not isinstance(data, list) or len(data) != len(map_indexes):
        raise XComError("stored XComs of a mapped task are not a list of its map indexes' values")
    return [_deserialize(item, backend, {**where, "map_index": i}) for i, item in zip(map_indexes, data, strict=True)]


def _deserialize(data: Any, backend: type[BaseXCom], where: dict[str, Any]) -> Any:
    try:
        return backend.deserialize_value(BaseXCom(value=data, **where))
    except XComError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise XComError(f"stored XCom is not valid: {exc}") from None
