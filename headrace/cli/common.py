"""What every CLI command shares: the Settings and Database built once in ``main()``,
Rich consoles, and turning a ``HeadraceError`` into a one-line message and exit code 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from headrace.config import Settings
from headrace.exceptions import HeadraceError

if TYPE_CHECKING:
    from headrace.db.engine import Database

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STATE_STYLES = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "up_for_retry": "yellow",
    "up_for_reschedule": "turquoise2",
    "deferred": "medium_purple",
    "running": "bright_green",
    "queued": "grey62",
    "scheduled": "tan",
    "skipped": "magenta",
    "removed": "grey70",
    "none": "dim",
}
"""Terminal colours of states (presentation lives here, not in states.py)."""


@dataclass
class AppState:
    """Built once by the root callback and reached through ``ctx.obj``.

    The database is opened on first use: commands that need none (``--help``, ``config list``)
    never import SQLAlchemy.
    """

    settings: Settings
    command: str = "cli"
    """The command run (``scheduler``, ``api-server``, …): its database connections are named
    ``headrace-<command>`` (``application_name``, seen in ``pg_stat_activity``)."""
    _db: Database | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        """The metadata database of ``settings`` (made on first use)."""
        if self._db is None:
            # Imported here, not at the top: SQLAlchemy is most of a database command's start-up time,
            # and the commands that need no database should not pay it (see headrace.cli.main).
            from headrace.db.engine import Database

            self._db = Database.from_settings(self.settings, role=self.command)
        return self._db

    def migrated_db(self) -> Database:
        """The database, after checking the schema is current (raises DatabaseError)."""
        if not schema_is_current(self.db):
            from headrace.db.migrate import check_migrated  # Alembic: only when the quick check is not enough

            check_migrated(self.db)
        return self.db


_MIGRATIONS = Path(__file__).resolve().parents[1] / "db" / "migrations" / "versions"
_REVISION = re.compile(r"""^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(?:["']([^"'\n]+)["']|(None))\s*$""", re.M)


def head_revision_from_files() -> str | None:
    """The newest migration's revision id, read from the migration files without importing Alembic.

    None when the files do not say plainly (a merge revision, an unexpected layout): then the
    caller asks Alembic (``headrace.db.migrate.check_migrated``).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _MIGRATIONS.glob("*.py"):
        found = dict((key, value or none) for key, value, none in _REVISION.findall(path.read_text(encoding="utf-8")))
        if set(found) != {"revision", "down_revision"}:
            return None
        revisions.add(found["revision"])
        if found["down_revision"] != "None":
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def schema_is_current(db: Database) -> bool:
    """True when the database's Alembic revision is the newest migration (a quick check; False: ask Alembic)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    head = head_revision_from_files()
    if head is None:
        return False
    try:
        with db.engine.connect() as conn:
            current = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError:  # no such table, unreachable server: check_migrated says which
        return False
    return current == [head]


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
        raise HeadraceError(
            f"{what} {value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T06:00:00+00:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def dag_label(dag_id: str, display_name: str | None) -> str:
    """How the CLI names a DAG in a header: its ``dag_display_name`` followed by the id in brackets when the two
    differ (``"Nightly load (nightly_load)"``), else the dag_id alone."""
    if display_name and display_name != dag_id:
        return f"{display_name} ({dag_id})"
    return dag_id


def fmt_time(value: datetime | None) -> str:
    """A datetime as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def fmt_bytes(value: int | None) -> str:
    """Bytes in MiB with one decimal, or ``-``."""
    return f"{value / 1048576:.1f} MiB" if value is not None else "-"
