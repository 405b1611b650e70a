"""DAG discovery as Airflow does it: the safe-mode test, .airflowignore / .headraceignore, the DAGs folder on sys.path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.discovery import find_dag_files, might_contain_dag
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, ImportError_

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def dag_file(dag_id: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        from headrace import DAG
        from headrace.operators import EmptyOperator
        {extra}
        with DAG("{dag_id}", schedule=None):
            EmptyOperator(task_id="only")
    """)


BROKEN = "# a DAG file of headrace that must never be imported\nraise RuntimeError('imported an ignored file')\n"


@pytest.fixture(autouse=True)
def clean_sys_path() -> Iterator[None]:
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.split(".")[0] in ("shared_helpers", "lib")]:
        del sys.modules[name]


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def listed(root: Path, syntax: str = "regexp") -> list[str]:
    return [p.relative_to(root).as_posix() for p in find_dag_files(root, syntax)]


@pytest.mark.parametrize(
    ("content", "parsed"),
    [
        (b"from airflow.sdk import DAG", True),
        (b"from headrace import dag", True),
        (b"import AIRFLOW_STUFF  # a Dag", True),
        (b"from headrace.operators import BashOperator", False),  # no "dag"
        (b"dag = 'helper for the dag files'", False),  # neither airflow nor headrace
    ],
)
def test_safe_mode_needs_dag_and_airflow_or_headrace(content: bytes, parsed: bool) -> None:
    assert might_contain_dag(content) is parsed


def test_regexp_ignore_patterns_apply_to_their_folder_and_below(tmp_path: Path) -> None:
    for rel in ("a.py", "skip_me.py", "sub/b.py", "sub/tmp_c.py", "sub/deep/tmp_d.py", "other/tmp_e.py", "vendor/x.py"):
        write(tmp_path, rel, "")
    write(tmp_path, ".airflowignore", "# comments and blank lines are skipped\n\nskip_.*\n^vendor\n")
    write(tmp_path, "sub/.headraceignore", "tmp_\n")  # only under sub/
    assert listed(tmp_path) == ["a.py", "other/tmp_e.py", "sub/b.py"]


def test_glob_syntax_follows_gitignore_rules(tmp_path: Path) -> None:
    for rel in ("a.py", "a_test.py", "keep_test.py", "build/x.py", "sub/build.py", "sub/top.py", "top.py"):
        write(tmp_path, rel, "")
    write(tmp_path, ".airflowignore", "*_test.py\n!keep_test.py\nbuild/\n/top.py\n")
    assert listed(tmp_path, "glob") == ["a.py", "keep_test.py", "sub/build.py", "sub/top.py"]
    # the same file read as regular expressions means something else: "build/" matches the folder's files
    assert "build/x.py" not in listed(tmp_path, "regexp")


def test_a_bad_regexp_line_is_skipped_and_the_rest_still_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "a.py", "")
    write(tmp_path, "b.py", "")
    write(tmp_path, ".airflowignore", "([unclosed\n^b\n")
    assert listed(tmp_path) == ["a.py"]
    assert ".airflowignore:1" in caplog.text


def test_an_unknown_syntax_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="regexp, glob"):
        list(find_dag_files(tmp_path, "fnmatch"))


def test_the_processor_skips_ignored_files_and_helpers_and_imports_helpers_from_the_dags_folder(
    settings: Settings, db: Database
) -> None:
    root = settings.dags_folder
    write(root, "lib/shared_helpers.py", "QUEUE = 'etl'\nraise_if_imported_as_a_dag_file = True\n")
    write(root, "lib/__init__.py", "")
    # a file in a subfolder imports a helper package from the DAGs folder (on sys.path, as in Airflow)
    write(root, "team/uses_helper.py", dag_file("uses_helper", "from lib.shared_helpers import QUEUE"))
    write(root, "plain.py", dag_file("plain"))
    write(root, "ignored/broken.py", BROKEN)
    write(root, "team/scratch_broken.py", BROKEN)
    write(root, ".airflowignore", "^ignored/\n")
    write(root, "team/.headraceignore", "scratch_\n")
    stats = DagProcessor(settings, db).refresh(NOW)
    with db.session() as session:
        errors = [(e.fileloc, e.message) for e in session.scalars(select(ImportError_))]
        dag_ids = sorted(session.scalars(select(DagModel.dag_id)))
    assert errors == []
    assert dag_ids == ["plain", "uses_helper"]
    assert stats.files_seen == 2  # the helpers (no "dag") and the ignored files were never parsed


def test_glob_syntax_through_the_processor(settings: Settings, db: Database) -> None:
    root = settings.dags_folder
    write(root, "plain.py", dag_file("plain"))
    write(root, "wip/broken.py", BROKEN)
    write(root, ".airflowignore", "wip/\n")
    glob = settings.with_overrides({"core": {"dag_ignore_file_syntax": "glob"}})
    DagProcessor(glob, db).refresh(NOW)
    with db.session() as session:
        assert list(session.scalars(select(ImportError_.fileloc))) == []
        assert list(session.scalars(select(DagModel.dag_id))) == ["plain"]


def test_an_airflow_file_is_a_dag_file_too(settings: Settings, db: Database) -> None:
    """Before: only files naming headrace were parsed, so an Airflow file was silently never looked at."""
    write(settings.dags_folder, "airflow_style.py", "from airflow.sdk import DAG\n")
    DagProcessor(settings, db).refresh(NOW)
    with db.session() as session:
        messages = list(session.scalars(select(ImportError_.message)))
    assert len(messages) == 1 and "airflow" in messages[0]  # parsed: no airflow module without airflow_imports
