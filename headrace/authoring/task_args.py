"""Arguments of operators that need parsing (retry delays, durations) and the names an operator class accepts.

Re-exported by :mod:`headrace.authoring.task`, where they were first defined; memory sizes are in
:mod:`headrace.authoring.sizes`, Airflow's ``BaseOperator`` argument names in :mod:`headrace.authoring.airflow_args`.
"""

from __future__ import annotations

import functools
import inspect
from datetime import timedelta

from headrace.exceptions import DagDefinitionError

MAX_RETRY_DELAY = timedelta(hours=24)
"""Ceiling for exponential backoff when ``max_retry_delay`` is not set (Airflow's)."""


def retry_delay_seconds(retry_delay: float, try_number: int, *, exponential: bool, max_delay: float | None) -> float:
    """Seconds to wait before the try after try ``try_number`` (1-based) failed: the one retry-delay rule.

    ``retry_delay`` and ``max_delay`` in seconds. Without backoff:
    ``retry_delay``. With it: ``retry_delay * 2 ** (try_number - 1)``, capped
    at ``max_delay`` (or :data:`MAX_RETRY_DELAY` if None). Airflow adds a
    jitter to the backoff; headrace does not, so the delay is predictable.
    Used by operators and by the serialized tasks the scheduler and
    supervisors read.
    """
    if not exponential:
        return retry_delay
    cap = max_delay if max_delay is not None else MAX_RETRY_DELAY.total_seconds()
    exponent = max(try_number, 1) - 1
    return cap if exponent > 64 else float(min(retry_delay * 2**exponent, cap))


def to_timedelta(value: timedelta | float | None, name: str) -> timedelta | None:
    """Accept a timedelta or a number of seconds (or None). Raises ``DagDefinitionError``."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise DagDefinitionError(f"{name} must be a timedelta or a number of seconds, got {value!r}")


@functools.cache
def _accepted_args(cls: type) -> frozenset[str]:
    """The keyword names the ``__init__`` methods of ``cls`` and its bases accept."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(inspect.unwrap(init)).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self":
                names.add(p.name)
    return frozenset(names)


def accepted_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments operator class ``cls`` accepts (its ``__init__`` and its bases')."""
    return _accepted_args(cls)
