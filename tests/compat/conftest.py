"""Fixtures of the Airflow compatibility tests: the finder is taken off again after each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.compat.airflow_finder import uninstall_airflow_imports

HERE = Path(__file__).parent
AIRFLOW_DAGS = HERE / "airflow_dags"
"""Airflow-style DAG files (Airflow 2 and 3 import styles)."""
NATIVE_DAGS = HERE / "native_dags"
"""Their headrace-native twins."""
UNSUPPORTED = HERE / "airflow_unsupported"
"""Airflow files using what headrace does not implement yet."""


@pytest.fixture(autouse=True)
def no_airflow_finder() -> Iterator[None]:
    """Whatever a test installs (a DagProcessor with core.airflow_imports on does), the next test starts clean."""
    path = list(sys.path)
    yield
    uninstall_airflow_imports()
    sys.path[:] = path
    for name in [n for n in sys.modules if n == "common" or n.startswith("common.")]:
        del sys.modules[name]
