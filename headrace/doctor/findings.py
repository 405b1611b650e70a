"""What ``headrace doctor`` reports: findings, each with a severity, the figures measured and a suggestion."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    """How much a finding matters, lowest first. Any ``error`` makes ``headrace doctor`` exit with code 1."""

    OK = "ok"
    """Measured and fine."""
    INFO = "info"
    """Worth knowing; nothing to fix (e.g. idle capacity, an idle helper process)."""
    WARNING = "warning"
    """Likely to cause trouble; the suggestion says what to change."""
    ERROR = "error"
    """Something already went wrong (e.g. tries killed for going over their memory limit)."""

    @property
    def rank(self) -> int:
        """0 for ok … 3 for error."""
        return _RANK[self]

    def __str__(self) -> str:
        return self.value


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3}


class Area(str, Enum):
    """The question a finding answers (the groups of the doctor's table, in this order)."""

    SLOTS = "executor slots"
    PROCESSES = "processes"
    TRIES = "running tries"
    MEMORY = "memory"
    SCHEDULER = "scheduler and database"
    DAG_FILES = "DAG files"
    TRIGGERER = "triggerer and deferrals"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """One answer of the doctor."""

    area: Area
    """Which question it answers."""
    severity: Severity
    title: str
    """One line saying what was measured, with the key figures in words."""
    figures: dict[str, Any] = field(default_factory=dict)
    """The measured values, machine-readable: names end in their unit (``_seconds``, ``_bytes``, ``_ms``)."""
    suggestion: str = ""
    """What to do about it (a setting with its environment variable, a command), or ``""``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"area", "severity", "title", "figures", "suggestion"}``."""
        return {
            "area": self.area.value,
            "severity": self.severity.value,
            "title": self.title,
            "figures": self.figures,
            "suggestion": self.suggestion,
        }


def worst(findings: list[Finding]) -> Severity:
    """The highest severity among ``findings`` (``ok`` for none)."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)


def env_name(section: str, key: str) -> str:
    """The environment variable of setting ``section.key``: ``HEADRACE__SECTION__KEY``."""
    return f"HEADRACE__{section.upper()}__{key.upper()}"


def set_setting(section: str, key: str, value: object) -> str:
    """A suggestion to change one setting, naming its environment variable: ``set core.parallelism = 6 (…=6)``."""
    return f"set {section}.{key} = {value} ({env_name(section, key)}={value})"


def fmt_bytes(value: float | None) -> str:
    """Bytes as MiB (below 1 GiB) or GiB with one decimal; ``-`` for None."""
    if value is None:
        return "-"
    if value >= 1 << 30:
        return f"{value / (1 << 30):.1f} GiB"
    return f"{value / (1 << 20):.1f} MiB"


def fmt_seconds(value: float | None) -> str:
    """Seconds, in ms below 1 s; ``-`` for None."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"
