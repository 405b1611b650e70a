"""Import one DAG file by path and collect the DAGs it defines.

The module gets a name derived from its path (``headrace_dag_<sha1[:12]>``) so
two files named ``etl.py`` in different folders never collide, and it is put in
``sys.modules`` under that name so pickling and ``inspect`` work as usual.
The DAG file's own folder is put on ``sys.path``, and a process that imports
DAG files calls :func:`prepare_dag_imports` once at start: it appends the DAGs
folder to ``sys.path`` (as Airflow does), so helper modules beside the DAGs
import (``from common.helpers import x`` from any subfolder), and installs
the Airflow import mapping when ``core.airflow_imports`` is on.

A process may keep the DAGs of a file it imported (``remember_dags``), keyed by
the file's version (``file_version``: mtime in ns and size, taken *before* the
import); ``remembered_dags`` returns them only while the file on disk still has
that version. The fork server uses this to import a DAG file once and let the
task processes it forks (indirectly) reuse the module instead of importing it
again on every try (see :mod:`headrace.executors.forkserver`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from headrace.authoring.dag import DAG
from headrace.compat.airflow_finder import install_airflow_imports
from headrace.config import Settings
from headrace.dagfiles import collect_dags
from headrace.exceptions import DagImportError


def module_name_for(path: str | Path) -> str:
    """The module name a DAG file is imported under."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return f"headrace_dag_{digest}"


def prepare_dag_imports(settings: Settings) -> None:
    """Make this process ready to import DAG files (call once at start, before forking children).

    Puts ``core.dags_folder`` last on ``sys.path`` (once; last, as Airflow
    does, so a file there never shadows a library this process imports later)
    and installs the Airflow import mapping if ``core.airflow_imports`` is
    true. Raises ``ConfigError`` when that setting is on and a real
    ``airflow`` package is importable.
    """
    install_airflow_imports(settings)
    folder = str(settings.dags_folder)
    if folder not in sys.path:
        sys.path.append(folder)


def import_dag_file(path: str | Path) -> ModuleType:
    """Import the file at ``path`` as a fresh module; errors propagate as raised by the file.

    Raises ``DagImportError`` only when the file is missing or not Python.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise DagImportError(f"DAG file {path} does not exist", fileloc=str(path))
    name = module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DagImportError(f"{path} is not a Python file", fileloc=str(path))
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_dags(path: str | Path) -> list[DAG]:
    """Import ``path`` and return the DAGs it defines, each validated (no cycles).

    Errors raised by the file's own code propagate unchanged; a cycle raises
    ``DagCycleError``.
    """
    module = import_dag_file(path)
    dags = collect_dags(module)
    for dag in dags:
        dag.validate()
    return dags


FileVersion = tuple[int, int]
"""``(st_mtime_ns, st_size)`` of a DAG file."""

_remembered: dict[str, tuple[FileVersion, list[DAG]]] = {}


def file_version(path: str | Path) -> FileVersion | None:
    """The file's ``(mtime_ns, size)``, or None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def remember_dags(path: str | Path, version: FileVersion, dags: list[DAG]) -> None:
    """Keep ``dags`` (imported from ``path`` when it had ``version``) for :func:`remembered_dags`.

    What every try of their tasks asks of a DAG is worked out here, once (the tasks mapped over), so
    processes forked afterwards inherit the answer.
    """
    for dag in dags:
        dag.mapped_over_ids()
    _remembered[str(path)] = (version, dags)


def forget_dags(path: str | Path) -> None:
    """Drop what :func:`remember_dags` kept for ``path`` (and its module from ``sys.modules``)."""
    if _remembered.pop(str(path), None) is not None:
        sys.modules.pop(module_name_for(path), None)


def remembered_dags(path: str | Path) -> list[DAG] | None:
    """The remembered DAGs of ``path`` if the file is unchanged since they were imported, else None."""
    entry = _remembered.get(str(path))
    if entry is None:
        return None
    version, dags = entry
    return dags if file_version(path) == version else None
