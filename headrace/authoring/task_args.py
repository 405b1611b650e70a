"""Arguments of operators: those that need parsing (retry delays, memory limits, durations), the names an
operator class accepts, and the names of Airflow's ``BaseOperator`` arguments.

Re-exported by :mod:`headrace.authoring.task`, where they were first defined.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
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


_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_memory_limit(value: int | str | None) -> int | None:
    """Return a memory limit in bytes.

    ``value``: ``None`` (no limit), an int of bytes, or a string: a number and a
    unit — decimal ``KB MB GB TB``, binary ``KiB MiB GiB TiB`` (also ``Ki Mi Gi Ti``
    and Docker's single letters ``K M G T``), case-insensitive:
    ``"512MiB"`` → 536870912, ``"2GB"`` → 2000000000, ``"1.5GiB"`` → 1610612736.
    Raises ``DagDefinitionError`` for anything else or a value ≤ 0.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DagDefinitionError(f"memory_limit must be bytes or a size string, got {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        match = _MEMORY_RE.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise DagDefinitionError(
                f"memory_limit {value!r} is not a size: use bytes or a number with a unit "
                "such as '512MiB', '2GB' or '1.5GiB'"
            )
        result = math.floor(float(match.group(1)) * _UNITS[unit])
    else:
        raise DagDefinitionError(f"memory_limit must be bytes or a size string, got {value!r}")
    if result <= 0:
        raise DagDefinitionError(f"memory_limit must be positive, got {value!r}")
    return result


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


AIRFLOW_OPERATOR_ARGS: frozenset[str] = frozenset(
    {
        "task_id",
        "owner",
        "email",
        "email_on_retry",
        "email_on_failure",
        "retries",
        "retry_delay",
        "retry_exponential_backoff",
        "max_retry_delay",
        "retry_policy",
        "start_date",
        "end_date",
        "depends_on_past",
        "depends_on_previous_tasks",
        "ignore_first_depends_on_past",
        "wait_for_past_depends_before_skipping",
        "wait_for_downstream",
        "dag",
        "params",
        "default_args",
        "priority_weight",
        "weight_rule",
        "queue",
        "pool",
        "pool_slots",
        "sla",
        "execution_timeout",
        "on_execute_callback",
        "on_failure_callback",
        "on_success_callback",
        "on_retry_callback",
        "on_skipped_callback",
        "pre_execute",
        "post_execute",
        "trigger_rule",
        "resources",
        "run_as_user",
        "task_concurrency",
        "map_index_template",
        "max_active_tis_per_dag",
        "max_active_tis_per_dagrun",
        "executor",
        "executor_config",
        "do_xcom_push",
        "multiple_outputs",
        "inlets",
        "outlets",
        "task_group",
        "doc",
        "doc_md",
        "doc_json",
        "doc_yaml",
        "doc_rst",
        "task_display_name",
        "logger_name",
        "allow_nested_operators",
        "render_template_as_native_obj",
        "start_from_trigger",
        "start_trigger_args",
    }
)
"""The keyword arguments of Airflow 3's ``BaseOperator`` (Task SDK). Those an operator here does not
accept are ignored with a DAG warning instead of raising, so an Airflow DAG ports by changing its imports."""


def accepted_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments operator class ``cls`` accepts (its ``__init__`` and its bases')."""
    return _accepted_args(cls)
