"""Starting a task in the triggerer (Airflow's ``start_from_trigger``): what the DAG processor stores, and the
rendering the scheduler does when a try starts.

An operator with ``start_from_trigger = True`` and ``start_trigger_args = StartTriggerArgs(trigger_cls=...,
trigger_kwargs=..., next_method=..., next_kwargs=..., timeout=...)`` (class attributes, or set on the instance
in ``__init__``, as in Airflow) never runs ``execute``: when one of its tries is due, the scheduler writes the
trigger row itself and moves the task instance ``scheduled → deferred`` with ``try_number + 1`` — a started try
with no process at all. Once the trigger fires, the task resumes in ``next_method(context, event=payload,
**next_kwargs)`` in a new process, in that same try, like any deferred task (its retries start in the
triggerer again).

* :func:`start_trigger_spec` checks the operator's arguments at parse time and encodes them (the serialized
  task's ``start_trigger``, JSON with XCom's types).
* :func:`render_trigger_kwargs` renders the string values of the stored ``trigger_kwargs`` that hold Jinja
  (``{{ … }}`` / ``{% … %}``) with the try's context, in the DAG's (or task's) ``render_template_as_native_obj``
  mode — the scheduler does, with the run's context keys (see ``docs/deferral.md``); Airflow 3.1+ renders the
  trigger's template fields in the triggerer with the same keys.

A mapped task does not start in the triggerer (as in Airflow 3, where it is not supported yet): its instances
run ``execute`` in a worker, and the DAG processor reports a DAG warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from headrace.authoring import xcom_serde
from headrace.authoring.context import make_jinja_env
from headrace.authoring.triggers import END_FROM_TRIGGER_REFUSED
from headrace.exceptions import DagDefinitionError
from headrace.types import Context

_MARKERS = ("{{", "{%")


def wants_start_from_trigger(task: Any) -> bool:
    """Whether operator ``task`` asks to start in the triggerer: ``start_from_trigger`` set on it, or — for a
    mapped task — on its operator class or in its ``partial`` arguments."""
    if getattr(task, "start_from_trigger", False):
        return True
    operator_class = getattr(task, "operator_class", None)
    partial = getattr(task, "partial_kwargs", None) or {}
    return bool(partial.get("start_from_trigger", getattr(operator_class, "start_from_trigger", False)))


def start_trigger_spec(task: Any) -> dict[str, Any] | None:
    """The serialized ``start_trigger`` of operator ``task``: ``{"trigger_cls", "trigger_kwargs", "next_method",
    "next_kwargs", "timeout", "native"}`` (kwargs encoded with XCom's types, ``timeout`` in seconds or None,
    ``native``: render templates as native objects); None when the task does not start in the triggerer (no
    ``start_from_trigger``, or a mapped task).

    Raises ``DagDefinitionError`` naming the task for ``start_from_trigger`` without ``start_trigger_args``, a
    ``trigger_cls`` that is not a ``module.ClassName`` string, a ``next_method`` the operator does not have,
    kwargs that are not dicts or cannot be stored, a bad ``timeout``, or ``end_from_trigger=True`` in
    ``trigger_kwargs`` (not supported).
    """
    if not getattr(task, "start_from_trigger", False) or getattr(task, "is_mapped", False):
        return None
    name = f"task {task.task_id!r}"
    args = getattr(task, "start_trigger_args", None)
    if args is None:
        raise DagDefinitionError(f"{name}: start_from_trigger=True needs start_trigger_args=StartTriggerArgs(...)")
    trigger_cls = getattr(args, "trigger_cls", None)
    if not isinstance(trigger_cls, str) or "." not in trigger_cls.strip("."):
        raise DagDefinitionError(
            f"{name}: start_trigger_args.trigger_cls must be 'module.ClassName', got {trigger_cls!r}"
        )
    next_method = getattr(args, "next_method", None)
    if not isinstance(next_method, str) or not callable(getattr(task, next_method, None)):
        raise DagDefinitionError(
            f"{name}: start_trigger_args.next_method={next_method!r}: the operator has no such method"
        )
    encoded: dict[str, Any] = {}
    for field in ("trigger_kwargs", "next_kwargs"):
        value = getattr(args, field, None)
        if value is not None and not isinstance(value, Mapping):
            raise DagDefinitionError(f"{name}: start_trigger_args.{field} must be a dict or None, got {value!r}")
        try:
            encoded[field] = xcom_serde.encode(dict(value)) if value else None
        except (TypeError, ValueError) as exc:
            raise DagDefinitionError(f"{name}: start_trigger_args.{field} cannot be stored: {exc}") from None
    if (getattr(args, "trigger_kwargs", None) or {}).get("end_from_trigger"):
        raise DagDefinitionError(f"{name}: {END_FROM_TRIGGER_REFUSED}")
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not isinstance(timeout, timedelta):
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise DagDefinitionError(
                f"{name}: start_trigger_args.timeout must be a timedelta or seconds, got {timeout!r}"
            )
        timeout = timedelta(seconds=timeout)
    native = task.render_template_as_native_obj
    if native is None:
        native = bool(getattr(task.dag, "render_template_as_native_obj", False))
    return {
        "trigger_cls": trigger_cls,
        "trigger_kwargs": encoded["trigger_kwargs"] or {},
        "next_method": next_method,
        "next_kwargs": encoded["next_kwargs"],
        "timeout": timeout.total_seconds() if timeout is not None else None,
        "native": bool(native),
    }


def has_templates(encoded: Any) -> bool:
    """Whether a string anywhere in ``encoded`` (stored kwargs) holds Jinja."""
    if isinstance(encoded, str):
        return any(m in encoded for m in _MARKERS)
    if isinstance(encoded, Mapping):
        return any(has_templates(v) for v in encoded.values())
    if isinstance(encoded, list):
        return any(has_templates(v) for v in encoded)
    return False


def render_trigger_kwargs(encoded: Any, context: Context, *, native: bool) -> Any:
    """``encoded`` (kwargs as stored, XCom's types) with each string that holds Jinja rendered with ``context``
    (a native render's object is encoded back). Raises ``jinja2.TemplateError`` (an undefined name, a broken
    template) and ``TypeError`` for a native result that cannot be stored."""
    env = make_jinja_env(None, native=native)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return xcom_serde.encode(env.from_string(value).render(context)) if has_templates(value) else value
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(encoded)


__all__ = ["has_templates", "render_trigger_kwargs", "start_trigger_spec", "wants_start_from_trigger"]
