"""fsspec is imported only when remote logs or XCom object storage are used: not on a try's path otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "headrace.executors.forkserver",
        "headrace.supervisor.supervise",
        "headrace.executors.celery",
        "headrace.executors.celery_worker",
    ],
)
def test_importing_the_try_path_does_not_import_fsspec(module: str) -> None:
    """Each fork server start and each sequential try would pay fsspec's import (~10 ms) for nothing."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'fsspec' or m.startswith('fsspec.')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
