"""DAG params: ``Param`` (a default plus a JSON schema) and ``ParamsDict``, with Airflow 3's names and semantics.

``DAG(params={"n": 3, "env": Param("dev", enum=["dev", "prod"])})`` mixes plain
values and ``Param``\\ s; a plain value is a ``Param`` with an empty schema (any
JSON value). Every keyword argument of ``Param`` other than ``default`` and
``description`` is JSON-schema vocabulary (``type``, ``enum``, ``const``,
``minimum``/``maximum``, ``minLength``/``maxLength``, ``pattern``, ``items``,
``format``, ``title``, …) or a trigger-form hint (``values_display``,
``section``), or the whole schema is given as ``schema={...}``. Nullable is
``type=["null", "string"]``. Validation uses the ``jsonschema`` library
(Draft 2020-12) with its format checker; the formats it checks are ``date``,
``date-time`` (RFC 3339, with an offset), ``time``, ``email``, ``ipv4``,
``ipv6``, ``uuid``, ``regex``, ``idn-email`` and ``idn-hostname``; other
formats (e.g. ``multiline``, Airflow's textarea hint) are annotations, as JSON
Schema defines them.

Where each rule is applied:

* when the DAG is created (at parse time): every default must be valid, and a
  DAG with a schedule must give every param a default (scheduled runs use the
  defaults); otherwise ``DagDefinitionError`` with the DAG's file and line;
* when a run is triggered (API, CLI, UI, backfill): the trigger's ``conf``
  overrides the params of the same name, then every param is validated
  (:func:`resolve_params`); a failure is ``ParamValidationError`` naming the
  param and the reason, and no run is created. Conf keys that are no param
  pass through unchecked, as in Airflow.

The scheduler validates from the serialized DAG (:meth:`Param.serialize`,
:func:`params_from_specs`), without importing user code.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from headrace.exceptions import DagDefinitionError, ParamValidationError

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError as _SchemaError


class ArgNotSet:
    """The type of :data:`NOTSET`: "no value given", distinct from ``None`` (which is a JSON value, null)."""

    _instance: ArgNotSet | None = None

    def __new__(cls) -> ArgNotSet:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOTSET"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> ArgNotSet:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ArgNotSet:
        return self


NOTSET: Final = ArgNotSet()
"""No default / no value (Airflow's ``NOTSET``)."""

MAX_MESSAGE_VALUE = 80
"""Characters of a refused value quoted in an error message (a conf may be large, or secret-looking)."""


def _is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time``: an ISO 8601 date and time with an offset (``Z`` or ``±HH:MM``).

    Raises ``ValueError`` saying why not (jsonschema keeps it as the error's cause).
    """
    if not isinstance(value, str):
        return True  # formats apply to strings only
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a UTC offset (Z or ±HH:MM)")
    return "T" in value.upper() or " " in value


def _best_match(errors: Iterator[_SchemaError]) -> _SchemaError | None:
    """jsonschema's choice of the most relevant error (None if there is none)."""
    from jsonschema.exceptions import best_match  # loaded by _jsonschema() already: no import cost here

    best: _SchemaError | None = best_match(errors)
    return best


@functools.cache
def _jsonschema() -> tuple[type[jsonschema.Draft202012Validator], jsonschema.FormatChecker]:
    """The validator class and the format checker (with ``date-time``), importing jsonschema on first use.

    jsonschema takes ~0.2 s to import: DAGs whose params are plain values (empty schemas) never pay it.
    """
    import jsonschema  # here, not at the top: see the docstring

    formats = jsonschema.FormatChecker()
    formats.checks("date-time", raises=ValueError)(_is_date_time)
    return jsonschema.Draft202012Validator, formats


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= MAX_MESSAGE_VALUE else text[: MAX_MESSAGE_VALUE - 1] + "…"


def _reason(error: _SchemaError) -> str:
    """One line for a schema error: where in the value (for arrays/objects), what was wrong, with the value cut short."""
    where = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
    validator = str(error.validator)
    value = _short(error.instance)
    if validator == "enum":
        message = f"{value} is not one of {_short(error.validator_value)}"
    elif validator == "const":
        message = f"{value} is not {_short(error.validator_value)}"
    elif validator == "type":
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        message = f"{value} is not of type {names}"
    elif validator == "format":
        message = f"{value} is not a valid {error.validator_value}"
        if error.cause is not None:
            message += f" ({error.cause})"
    elif validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "less than", "maximum": "greater than"}
        if validator in words:
            message = f"{value} is {words[validator]} the {validator} {error.validator_value}"
        else:
            message = (
                f"{value} is not {'above' if validator == 'exclusiveMinimum' else 'below'} {error.validator_value}"
            )
    else:  # jsonschema's own words; the value it quotes first is cut short, in JSON
        message = error.message
        quoted = repr(error.instance)
        if message.startswith(quoted):
            message = value + message[len(quoted) :]
        message = message if len(message) <= 200 else message[:199] + "…"
    return f"at {where}: {message}" if where else message


class Param:
    """A DAG param: a default value, a JSON schema that values must satisfy, and a description.

    ``Param(default=NOTSET, description=None, **schema)``; ``schema={...}``
    gives the whole schema instead. ``default`` must be a JSON value (``None``
    is null, not "no default"). ``title``, ``description`` and
    ``values_display`` (enum value → label) are shown by the trigger form.
    Raises ``DagDefinitionError`` for a default that is not JSON or a schema
    that is not a valid JSON schema.
    """

    __slots__ = ("description", "schema", "value")

    def __init__(self, default: Any = NOTSET, description: str | None = None, **kwargs: Any) -> None:
        if isinstance(default, Param):  # Param(Param(...)) keeps the inner one's default
            default = default.value
        self.value: Any = default
        """The default (Airflow's name), or ``NOTSET``."""
        self.description = description
        """One line shown under the field in the trigger form."""
        schema = kwargs.pop("schema") if "schema" in kwargs else kwargs
        if not isinstance(schema, Mapping):
            raise DagDefinitionError(f"Param schema must be a dict, got {type(schema).__name__}")
        self.schema: dict[str, Any] = dict(schema)
        """The JSON schema (Draft 2020-12) every value must satisfy."""
        if self.schema:
            validator, _ = _jsonschema()
            try:
                validator.check_schema(self.schema)
            except Exception as exc:  # noqa: BLE001 - jsonschema.SchemaError, imported lazily
                raise DagDefinitionError(
                    f"Param schema is not a valid JSON schema: {getattr(exc, 'message', exc)}"
                ) from None
        if default is not NOTSET:
            try:
                json.dumps(default)
            except (TypeError, ValueError) as exc:
                raise DagDefinitionError(f"Param default {default!r} is not JSON-serializable: {exc}") from None

    def __repr__(self) -> str:
        return f"Param({self.value!r}, schema={self.schema!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Param):
            return NotImplemented
        return (self.value, self.description, self.schema) == (other.value, other.description, other.schema)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict

    @property
    def has_value(self) -> bool:
        """True if the param has a default."""
        return self.value is not NOTSET

    def resolve(self, value: Any = NOTSET, *, suppress_exception: bool = False, name: str | None = None) -> Any:
        """Return ``value`` (or the default, when ``value`` is ``NOTSET``) after checking it against the schema.

        Raises ``ParamValidationError`` (``param`` = ``name``) when there is no value
        at all or the value fails the schema; with ``suppress_exception`` returns
        None instead.
        """
        final = self.value if value is NOTSET else value
        reason = self._refusal(final)
        if reason is None:
            return final
        if suppress_exception:
            return None
        label = f"param {name!r}" if name else "param"
        raise ParamValidationError(f"{label}: {reason}", param=name, reason=reason)

    def _refusal(self, value: Any) -> str | None:
        """Why ``value`` is refused (one line), or None if it is valid."""
        if value is NOTSET:
            return "no value given and the param has no default"
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            return f"the value is not JSON-serializable: {exc}"
        if not self.schema:
            return None
        validator, formats = _jsonschema()
        error = _best_match(validator(self.schema, format_checker=formats).iter_errors(value))
        return None if error is None else _reason(error)

    def dump(self) -> dict[str, Any]:
        """``{"value", "description", "schema"}``; ``value`` is None when there is no default (Airflow's dump)."""
        return {"value": None if self.value is NOTSET else self.value, "description": self.description,
                "schema": dict(self.schema)}  # fmt: skip

    def serialize(self) -> dict[str, Any]:
        """The JSON form stored with the serialized DAG: ``{"default"?, "description", "schema"}``.

        ``default`` is absent when the param has none.
        """
        out: dict[str, Any] = {"description": self.description, "schema": _sorted(self.schema)}
        if self.value is not NOTSET:
            out["default"] = self.value
        return out

    @classmethod
    def deserialize(cls, data: Mapping[str, Any]) -> Param:
        """The Param of :meth:`serialize`'s output."""
        return cls(data.get("default", NOTSET), data.get("description"), schema=dict(data.get("schema") or {}))


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class ParamsDict(MutableMapping[str, Any]):
    """The params of a DAG: name → :class:`Param`, read as values (Airflow's ``ParamsDict``).

    ``params["n"]`` is the resolved value (the default, checked against the
    schema); ``params.get_param("n")`` is the ``Param``. Assigning a ``Param``
    replaces it; assigning a plain value to an existing param keeps its schema
    and checks the value against it (``ParamValidationError`` unless
    ``suppress_exception``); assigning to a new name makes a schema-less param.
    """

    __slots__ = ("_params", "suppress_exception")

    def __init__(self, dict_obj: Mapping[str, Any] | None = None, suppress_exception: bool = False) -> None:
        self.suppress_exception = suppress_exception
        if isinstance(dict_obj, ParamsDict):  # its Params, copied (its values would resolve, and may be missing)
            self._params: dict[str, Param] = {k: copy.copy(p) for k, p in dict_obj._params.items()}
            return
        self._params = {k: v if isinstance(v, Param) else Param(v) for k, v in (dict_obj or {}).items()}

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, Param):
            self._params[name] = value
            return
        param = self._params.get(name)
        if param is None:
            self._params[name] = Param(value)
            return
        param.resolve(value, suppress_exception=self.suppress_exception, name=name)
        param.value = value

    def __getitem__(self, name: str) -> Any:
        return self._params[name].resolve(suppress_exception=self.suppress_exception, name=name)

    def __delitem__(self, name: str) -> None:
        del self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def __repr__(self) -> str:
        return f"ParamsDict({self._params!r})"

    def __copy__(self) -> ParamsDict:
        return ParamsDict(self, self.suppress_exception)

    def copy(self) -> ParamsDict:
        """A copy whose Params are copies (changing a value in one leaves the other)."""
        return self.__copy__()

    def get_param(self, name: str) -> Param:
        """The ``Param`` of ``name``. Raises ``KeyError``."""
        return self._params[name]

    def items_params(self) -> Iterator[tuple[str, Param]]:
        """``(name, Param)`` pairs, in insertion order."""
        return iter(self._params.items())

    def dump(self) -> dict[str, Any]:
        """name → default value (None where there is none), without validating."""
        return {k: (None if p.value is NOTSET else p.value) for k, p in self._params.items()}

    def validate(self) -> dict[str, Any]:
        """name → resolved value; raises ``ParamValidationError`` naming the first invalid param."""
        return {k: p.resolve(suppress_exception=self.suppress_exception, name=k) for k, p in self._params.items()}

    def serialize(self) -> list[dict[str, Any]]:
        """``[{"name", **Param.serialize()}, …]`` in the order the params were declared (the trigger form's order)."""
        return [{"name": k, **p.serialize()} for k, p in self._params.items()]


def params_from_specs(specs: Iterable[Mapping[str, Any]]) -> ParamsDict:
    """The ParamsDict of :meth:`ParamsDict.serialize`'s output (as stored with the serialized DAG), in its order."""
    return ParamsDict({str(spec["name"]): Param.deserialize(spec) for spec in specs})


def resolve_params(params: ParamsDict, conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a run's tasks see as ``params``: the params overridden by ``conf``, every param validated.

    Returns name → value for every param, plus the conf keys that are no param
    (unchecked, as in Airflow). Raises ``ParamValidationError`` (its ``param``
    names the first invalid param, in the DAG's order) when a value fails its
    schema or a param without default is not in ``conf``.
    """
    conf = dict(conf or {})
    values = {name: param.resolve(conf.get(name, NOTSET), name=name) for name, param in params.items_params()}
    return {**values, **{k: v for k, v in conf.items() if k not in values}}


def task_params(
    dag_params: ParamsDict | None,
    group_default_params: Mapping[str, Any] | None,
    own: Mapping[str, Any] | None,
    *,
    task_id: str,
    fileloc: str | None = None,
    lineno: int | None = None,
) -> ParamsDict:
    """A task's params, merged as Airflow merges them: the DAG's, then ``params`` from the innermost task
    group's ``default_args``, then the task's own ``params=``. A later ``Param`` replaces one of the same
    name; a later plain value for an existing param keeps its schema (and must satisfy it), as
    ``ParamsDict.__setitem__`` does; a plain value for a new name is a schema-less param.

    Every default is checked against its schema (at parse time, as the DAG's are). Raises
    ``DagDefinitionError`` (at ``fileloc``:``lineno``, the DAG's) naming the task and the param for an
    invalid default, and for ``params`` that is not a mapping.
    """
    merged = ParamsDict(dag_params) if dag_params is not None else ParamsDict()
    changed: set[str] = set()  # the DAG's own defaults were checked with the DAG: only these are new
    for source, label in ((group_default_params, "default_args['params']"), (own, "params")):
        if source is None:
            continue
        if not isinstance(source, Mapping):
            raise DagDefinitionError(
                f"task {task_id!r}: {label} must be a dict, got {type(source).__name__}", fileloc=fileloc, lineno=lineno
            )
        values = source.items_params() if isinstance(source, ParamsDict) else source.items()
        for name, value in values:
            try:  # a plain value for a param the DAG has keeps its schema and is checked against it
                merged[name] = copy.copy(value) if isinstance(value, Param) else value
            except ParamValidationError as exc:
                raise DagDefinitionError(f"task {task_id!r}: {exc.message}", fileloc=fileloc, lineno=lineno) from None
            changed.add(name)
    for name, param in merged.items_params():
        if name in changed and param.has_value:
            try:
                param.resolve(name=name)
            except ParamValidationError as exc:
                raise DagDefinitionError(f"task {task_id!r}: {exc.message}", fileloc=fileloc, lineno=lineno) from None
    return merged


def own_params_field(params: ParamsDict | None, dag_params: ParamsDict | None) -> dict[str, Any]:
    """``{"params": [spec, …]}`` (:meth:`ParamsDict.serialize`) for a serialized task whose params differ
    from its DAG's; ``{}`` otherwise, so tasks without params of their own serialize (and hash) as before.

    Raises ``DagDefinitionError`` if a default is not JSON (checked when the Param was made, so not expected).
    """
    if params is None:
        return {}
    specs = params.serialize()
    if dag_params is not None and specs == dag_params.serialize():
        return {}
    try:
        return {"params": json.loads(json.dumps(specs, sort_keys=True))}
    except (TypeError, ValueError) as exc:
        raise DagDefinitionError(f"task params must be JSON-serializable: {exc}") from None


def context_params(
    params: ParamsDict, conf: Mapping[str, Any] | None, *, conf_overrides: bool = True
) -> dict[str, Any]:
    """A try's ``params`` context entry: the task's params, the run's ``conf`` on top when ``conf_overrides``
    (Airflow's ``core.dag_run_conf_overrides_params``, default true).

    The conf was validated against the DAG's params when the run was created; here each value is checked
    against the task's own schema too. Returns name → value; conf keys that are no param pass through.
    Raises ``ParamValidationError`` naming the param (the try fails, as in Airflow).
    """
    return resolve_params(params, conf if conf_overrides else None)


def check_dag_params(params: ParamsDict, *, scheduled: bool) -> None:
    """Parse-time check of a DAG's params: every default valid; with a schedule, every param has one.

    Raises ``ParamValidationError`` naming the first param that fails.
    """
    for name, param in params.items_params():
        if param.has_value:
            param.resolve(name=name)
        elif scheduled:
            raise ParamValidationError(
                f"param {name!r} has no default, but the DAG has a schedule and scheduled runs use the defaults",
                param=name,
            )


__all__ = [
    "MAX_MESSAGE_VALUE",
    "NOTSET",
    "ArgNotSet",
    "Param",
    "ParamsDict",
    "check_dag_params",
    "context_params",
    "own_params_field",
    "params_from_specs",
    "resolve_params",
    "task_params",
]
