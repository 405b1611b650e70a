"""Which files in a DAGs folder are DAG files: ignore files and Airflow's safe-mode heuristic.

A folder is walked top-down (:func:`find_dag_files`). In every folder,
``.airflowignore`` and ``.headraceignore`` (both, if both exist) list
patterns of paths to skip; they apply to that folder and everything below
it, as Airflow documents, with ``core.dag_ignore_file_syntax``:

* ``regexp`` (Airflow's default): each line is a regular expression searched
  (``re.search``) in the path relative to the folder holding the ignore file;
  a folder that matches is skipped whole.
* ``glob``: each line is a ``.gitignore`` pattern (``*``, ``**``, ``?``,
  ``[...]``, a leading ``/`` anchors it to the ignore file's folder, a
  trailing ``/`` matches folders only, ``!`` re-includes), matched by
  ``pathspec``.

Blank lines and lines starting with ``#`` are comments in both. A pattern
that is not a valid regular expression is skipped with a warning naming the
ignore file and the line (the rest of the file still applies).

A ``.py`` file left over is a DAG file when its bytes mention ``dag``
(any case) and either ``airflow`` or ``headrace`` (:func:`might_contain_dag`,
Airflow's "safe mode" test): files of helpers beside the DAGs are not
imported by the DAG processor, but can be imported by the DAG files.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

log = logging.getLogger(__name__)

IGNORE_FILES = (".airflowignore", ".headraceignore")
"""Names of the ignore files read in every folder."""

SYNTAXES = ("regexp", "glob")
"""The values of ``core.dag_ignore_file_syntax``."""


def might_contain_dag(content: bytes) -> bool:
    """Whether a file's bytes mention ``dag`` (any case) and ``airflow`` or ``headrace`` (any case)."""
    lowered = content.lower()
    return b"dag" in lowered and (b"airflow" in lowered or b"headrace" in lowered)


@dataclass(frozen=True)
class _Rules:
    """The patterns of one ignore file (or of both in one folder), with the folder they are relative to."""

    base: Path
    """The folder holding the ignore file(s)."""
    regexps: tuple[re.Pattern[str], ...]
    """Compiled ``regexp`` patterns (syntax ``regexp``)."""
    spec: pathspec.PathSpec | None  # type: ignore[type-arg]
    """The ``glob`` patterns (syntax ``glob``)."""

    def ignores(self, path: Path, is_dir: bool) -> bool:
        """Whether ``path`` (inside ``base``) is ignored by these rules."""
        rel = path.relative_to(self.base).as_posix()
        if self.spec is not None:
            return self.spec.match_file(rel + "/" if is_dir else rel)
        return any(p.search(rel) for p in self.regexps)


def _read_rules(folder: Path, syntax: str) -> _Rules | None:
    """The rules of ``folder``'s ignore files, or None when it has none (or only comments)."""
    lines: list[tuple[Path, int, str]] = []
    for name in IGNORE_FILES:
        ignore_file = folder / name
        try:
            text = ignore_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                lines.append((ignore_file, lineno, line))
    if not lines:
        return None
    if syntax == "glob":
        return _Rules(folder, (), pathspec.PathSpec.from_lines("gitignore", [line for _, _, line in lines]))
    compiled: list[re.Pattern[str]] = []
    for ignore_file, lineno, line in lines:
        try:
            compiled.append(re.compile(line))
        except re.error as exc:
            log.warning("%s:%d: %r is not a regular expression (%s); line skipped", ignore_file, lineno, line, exc)
    return _Rules(folder, tuple(compiled), None)


def find_dag_files(folder: Path, syntax: str = "regexp") -> Iterator[Path]:
    """The ``.py`` files under ``folder`` that no ignore file excludes, sorted within each folder.

    ``syntax`` is ``core.dag_ignore_file_syntax`` (``regexp`` or ``glob``);
    anything else raises ``ValueError``. Symbolic links to folders are
    followed once (a loop back to a folder already walked is not). Whether a
    file mentions a DAG is not checked here (see :func:`might_contain_dag`).
    """
    if syntax not in SYNTAXES:
        raise ValueError(f"dag_ignore_file_syntax must be one of {', '.join(SYNTAXES)}, not {syntax!r}")
    seen: set[str] = set()
    yield from _walk(folder, [], syntax, seen)


def _walk(folder: Path, inherited: list[_Rules], syntax: str, seen: set[str]) -> Iterator[Path]:
    real = os.path.realpath(folder)
    if real in seen:
        return
    seen.add(real)
    rules = list(inherited)
    own = _read_rules(folder, syntax)
    if own is not None:
        rules.append(own)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if any(r.ignores(path, is_dir) for r in rules):
            continue
        if is_dir:
            if entry.name != "__pycache__":
                yield from _walk(path, rules, syntax, seen)
        elif entry.name.endswith(".py"):
            yield path
