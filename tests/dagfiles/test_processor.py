"""DagProcessor: which files get parsed, what is stored, and how broken files are recorded."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagFile, DagModel, DagVersion, ImportError_

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

GOOD = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("{dag_id}", schedule="{schedule}", start_date=datetime(2024, 1, 1), catchup={catchup}):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` and make sure its mtime moves (coarse file system clocks)."""
    st = path.stat()
    path.write_text(textwrap.dedent(text))
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))


def errors(db: Database) -> list[ImportError_]:
    with db.session() as session:
        return list(session.scalars(select(ImportError_).order_by(ImportError_.fileloc)))


def test_new_file_is_parsed_and_stored(settings: Settings, db: Database) -> None:
    write(settings.dags_folder, "etl.py", GOOD.format(dag_id="etl", schedule="@daily", catchup=False))
    (settings.dags_folder / "notes.py").write_text("x = 1  # no marker: not a DAG file\n")
    stats = DagProcessor(settings, db).refresh(NOW)
    assert (stats.files_seen, stats.files_parsed, stats.dags, stats.errors) == (1, 1, 1, 0)
    with db.session() as session:
        dag = session.get(DagModel, "etl")
        assert dag is not None and dag.is_active and not dag.is_paused
        assert dag.schedule == "@daily"
        assert dag.max_active_runs == settings.get("core", "max_active_runs_per_dag")
        # catchup=False: the latest complete interval before now
        assert dag.next_logical_date == datetime(2024, 3, 1, tzinfo=UTC)  # the latest fire time (Airflow 3)
        assert dag.next_run_after == datetime(2024, 3, 1, tzinfo=UTC)
        assert session.scalars(select(DagVersion)).one().dag_id == "etl"
        row = session.scalars(select(DagFile)).one()
        assert row.dag_ids == ["etl"] and row.parse_seconds > 0


def test_unchanged_file_is_not_parsed_again_and_pause_survives(settings: Settings, db: Database) -> None:
    path = write(settings.dags_folder, "etl.py", GOOD.format(dag_id="etl", schedule="@daily", catchup=True))
    processor = DagProcessor(settings, db)
    processor.refresh(NOW)
    with db.session() as session:
        session.get(DagModel, "etl").is_paused = True  # type: ignore[union-attr]
    assert processor.refresh(NOW).files_parsed == 0
    touch_later(path, GOOD.format(dag_id="etl", schedule="@hourly", catchup=True))
    assert processor.refresh(NOW).files_parsed == 1
    with db.session() as session:
        dag = session.get(DagModel, "etl")
        assert dag is not None and dag.is_paused and dag.schedule == "@hourly"
        # catchup=True, schedule changed: first interval since start_date
        assert dag.next_logical_date == datetime(2024, 1, 1, tzinfo=UTC)
        assert len(session.scalars(select(DagVersion)).all()) == 2


def test_syntax_error_is_recorded_with_its_line(settings: Settings, db: Database) -> None:
    write(settings.dags_folder, "bad.py", "import headrace  # a DAG file (Airflow's safe mode)\n\nx = (\n")
    stats = DagProcessor(settings, db).refresh(NOW)
    assert stats.errors == 1
    [err] = errors(db)
    assert err.fileloc.endswith("bad.py") and err.lineno == 3
    assert err.message.startswith("SyntaxError:") and "\n" not in err.message


def test_exception_is_recorded_with_deepest_line_in_file(settings: Settings, db: Database) -> None:
    write(
        settings.dags_folder,
        "raises.py",
        """\
        import headrace  # a DAG file (Airflow's safe mode)

        def helper():
            raise ValueError("no such table")

        helper()
        """,
    )
    DagProcessor(settings, db).refresh(NOW)
    [err] = errors(db)
    assert err.lineno == 4 and err.message == "ValueError: no such table"
    assert err.stacktrace and "helper" in err.stacktrace


def test_cycle_is_an_import_error(settings: Settings, db: Database) -> None:
    write(
        settings.dags_folder,
        "cycle.py",
        """\
        from headrace import DAG
        from headrace.operators import EmptyOperator

        with DAG("cyclic") as dag:
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            a >> b >> a
        """,
    )
    DagProcessor(settings, db).refresh(NOW)
    [err] = errors(db)
    assert err.message.startswith("DagCycleError:") and "a → b → a" in err.message
    assert err.lineno == 4
    with db.session() as session:
        assert session.get(DagModel, "cyclic") is None


def test_infinite_loop_times_out(settings: Settings, db: Database) -> None:
    settings = settings.with_overrides({"core": {"dagbag_import_timeout": 1}})
    path = write(
        settings.dags_folder,
        "forever.py",
        "import headrace  # a DAG file (Airflow's safe mode)\nwhile True:\n    pass\n",
    )
    write(settings.dags_folder, "etl.py", GOOD.format(dag_id="etl", schedule="@daily", catchup=False))
    stats = DagProcessor(settings, db).refresh(NOW)
    assert (stats.files_parsed, stats.dags, stats.errors) == (2, 1, 1)
    [err] = errors(db)
    assert err.message == f"timed out after 1.0 s importing {os.path.realpath(path)}"


def test_fixed_file_clears_its_import_error(settings: Settings, db: Database) -> None:
    path = write(
        settings.dags_folder,
        "etl.py",
        "import headrace  # a DAG file (Airflow's safe mode)\nraise RuntimeError('boom')\n",
    )
    processor = DagProcessor(settings, db)
    processor.refresh(NOW)
    assert len(errors(db)) == 1
    touch_later(path, GOOD.format(dag_id="etl", schedule="@daily", catchup=False))
    processor.refresh(NOW)
    assert errors(db) == []


def test_deleted_file_and_removed_dag_become_inactive(settings: Settings, db: Database) -> None:
    two = (
        GOOD.format(dag_id="one", schedule="@daily", catchup=False)
        + GOOD.format(dag_id="two", schedule="@daily", catchup=False).split("\n", 4)[4]
    )
    path = write(settings.dags_folder, "pair.py", two)
    processor = DagProcessor(settings, db)
    assert processor.refresh(NOW).dags == 2
    touch_later(path, GOOD.format(dag_id="one", schedule="@daily", catchup=False))
    processor.refresh(NOW)
    with db.session() as session:
        assert session.get(DagModel, "one").is_active  # type: ignore[union-attr]
        assert not session.get(DagModel, "two").is_active  # type: ignore[union-attr]
    path.unlink()
    processor.refresh(NOW)
    with db.session() as session:
        assert not session.get(DagModel, "one").is_active  # type: ignore[union-attr]
        assert session.scalars(select(DagFile)).all() == []


def test_extra_folders_and_subfolders(settings: Settings, db: Database, tmp_path: Path) -> None:
    sub = settings.dags_folder / "team" / "nested"
    sub.mkdir(parents=True)
    write(sub, "etl.py", GOOD.format(dag_id="nested", schedule="@daily", catchup=False))
    extra = tmp_path / "extra"
    extra.mkdir()
    write(extra, "more.py", GOOD.format(dag_id="extra", schedule="@daily", catchup=False))
    stats = DagProcessor(settings, db, extra_folders=[extra]).refresh(NOW)
    assert stats.dags == 2


@pytest.mark.parametrize(
    "body",
    [
        "import headrace, sys  # a DAG file (Airflow's safe mode)\nsys.exit(3)\n",
        "import headrace, os  # a DAG file (Airflow's safe mode)\nos._exit(0)\n",
    ],
)
def test_file_that_exits_is_an_import_error(settings: Settings, db: Database, body: str) -> None:
    write(settings.dags_folder, "exits.py", body)
    assert DagProcessor(settings, db).refresh(NOW).errors == 1
    [err] = errors(db)
    assert err.message
