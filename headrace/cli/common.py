"""What every CLI command shares: the Settings and Database built once in ``main()``,
Rich consoles, and turning a ``HeadraceError`` into a one-line message and exit code 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.migrate import check_migrated
from headrace.exceptions import HeadraceError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STATE_STYLES = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "up_for_retry": "yellow",
    "running": "bright_green",
    "queued": "grey62",
    "scheduled": "tan",
    "skipped": "magenta",
    "none": "dim",
}
"""Terminal colours of states (presentation lives here, not in states.py)."""


@dataclass
class AppState:
    """Built once by the root callback and reached through ``ctx.obj``."""

    settings: Settings
    db: Database

    def migrated_db(self) -> Database:
        """The database, after checking the schema is current (raises DatabaseError)."""
        check_migrated(self.db)
        return self.db


def app_state(ctx: typer.Context) -> AppState:
    """The AppState of this invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, AppState)
    return obj


def fail(message: str) -> typer.Exit:
    """Print ``message`` in red on stderr and return an Exit(1) to raise."""
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def styled(state: str | None) -> str:
    """A state as Rich markup in its colour."""
    s = state or "none"
    return f"[{STATE_STYLES.get(s, 'white')}]{s}[/]"


def parse_conf(conf: str | None) -> dict[str, Any]:
    """Parse ``--conf`` JSON; it must be an object. Raises HeadraceError with the reason."""
    if not conf:
        return {}
    try:
        value = json.loads(conf)
    except json.JSONDecodeError as exc:
        raise HeadraceError(f"--conf is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HeadraceError(f"--conf must be a JSON object, got {type(value).__name__}")
    return value


def parse_date(value: str | None, *, what: str = "logical date") -> datetime | None:
    """Parse an ISO date or datetime; naive means UTC. Raises HeadraceError if malformed."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HeadraceError(f"{what} {value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T06:00:00+00:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fmt_time(value: datetime | None) -> str:
    """A datetime as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def fmt_bytes(value: int | None) -> str:
    """Bytes in MiB with one decimal, or ``-``."""
    return f"{value / 1048576:.1f} MiB" if value is not None else "-"
