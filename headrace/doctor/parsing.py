"""The slowest DAG files to parse, against ``core.dagbag_import_timeout``, and the import errors.

``dag_file.parse_seconds`` is how long the DAG processor took on each file
the last time it parsed it.
"""

from __future__ import annotations

from sqlalchemy import func, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagFile, ImportError_
from headrace.doctor.findings import Area, Finding, Severity, fmt_seconds, set_setting

SLOW_SHARE = 0.5
"""A file whose parse takes more than this share of ``core.dagbag_import_timeout`` gets a warning."""
TOP = 5


def _last_line(message: str | None) -> str:
    lines = (message or "").strip().splitlines()
    return lines[-1] if lines else ""


def parse_findings(settings: Settings, db: Database) -> list[Finding]:
    """The ``TOP`` slowest files (warning above half the import timeout) and the import error count."""
    timeout = settings.get_float("core", "dagbag_import_timeout")
    with db.read_session() as session:
        slowest = session.execute(
            select(DagFile.fileloc, DagFile.parse_seconds).order_by(DagFile.parse_seconds.desc()).limit(TOP)
        ).all()
        files = session.scalar(select(func.count()).select_from(DagFile)) or 0
        errors = session.execute(
            select(ImportError_.fileloc, ImportError_.message).order_by(ImportError_.fileloc)
        ).all()
    findings: list[Finding] = []
    for fileloc, seconds in slowest:
        if seconds > SLOW_SHARE * timeout:
            findings.append(
                Finding(
                    Area.DAG_FILES,
                    Severity.WARNING,
                    f"{fileloc} takes {fmt_seconds(seconds)} to parse, {seconds / timeout:.0%} of "
                    f"core.dagbag_import_timeout ({timeout:g} s)",
                    {"fileloc": fileloc, "parse_seconds": seconds, "dagbag_import_timeout_seconds": timeout},
                    "move slow work out of the file's top level (into tasks); or "
                    + set_setting("core", "dagbag_import_timeout", round(seconds * 3, 1)),
                )
            )
    top = [{"fileloc": f, "parse_seconds": round(s, 4)} for f, s in slowest]
    if slowest:
        findings.append(
            Finding(
                Area.DAG_FILES,
                Severity.OK,
                f"{files} DAG file{'s' if files != 1 else ''}; slowest {slowest[0][0]} ({fmt_seconds(slowest[0][1])})",
                {"dag_files": files, "slowest": top, "dagbag_import_timeout_seconds": timeout},
            )
        )
    else:
        findings.append(
            Finding(
                Area.DAG_FILES,
                Severity.INFO,
                "no DAG file parsed yet",
                {"dag_files": 0, "dags_folder": str(settings.dags_folder)},
                "put DAG files in core.dags_folder and run `headrace scheduler`",
            )
        )
    if errors:
        findings.append(
            Finding(
                Area.DAG_FILES,
                Severity.WARNING,
                f"{len(errors)} DAG file{'s' if len(errors) != 1 else ''} failed to import: "
                + ", ".join(str(f) for f, _ in errors[:3])
                + (" …" if len(errors) > 3 else ""),
                {
                    "import_errors": len(errors),
                    "files": [{"fileloc": f, "message": _last_line(m)} for f, m in errors[:20]],
                },
                "`headrace dags list-import-errors` shows why",
            )
        )
    else:
        findings.append(Finding(Area.DAG_FILES, Severity.OK, "no import errors", {"import_errors": 0}))
    return findings
