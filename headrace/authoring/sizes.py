"""Memory sizes: ``memory_limit`` strings such as ``"512MiB"`` to bytes."""

from __future__ import annotations

import math
import re

from headrace.exceptions import DagDefinitionError

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


__all__ = ["parse_memory_limit"]
