"""The same ``dag_id`` in two DAG files: the first file keeps it, the other gets an import error naming both.

Real DAG processor (parse children, both databases). "First" is the file that owns the DAG in the DB; within
one pass the lower path, whichever parse ends first. When the owner stops defining the DAG, the other file
takes it over on its next parse, without being touched.
"""

from __future__ import annotations

import os
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, ImportError_

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

DAG_FILE = """
import time
from headrace import DAG
from headrace.operators import EmptyOperator

time.sleep({sleep})
for dag_id in {dag_ids!r}:
    with DAG(dag_id, description={description!r}):
        EmptyOperator(task_id="t")
"""


def write(path: Path, dag_ids: list[str], description: str, sleep: float = 0.0) -> None:
    """(Re)write a DAG file; its mtime moves forward so the processor sees the change."""
    old = path.stat().st_mtime if path.exists() else None
    path.write_text(textwrap.dedent(DAG_FILE.format(sleep=sleep, dag_ids=dag_ids, description=description)))
    if old is not None:
        os.utime(path, (old + 10, old + 10))


def bound(db: Database, dag_id: str) -> tuple[str, str | None, bool]:
    """``(file name, description, is_active)`` of the DAG as stored."""
    with db.session() as session:
        dag = session.get(DagModel, dag_id)
        assert dag is not None
        return Path(dag.fileloc).name, dag.description, dag.is_active


def import_errors(db: Database) -> dict[str, list[str]]:
    with db.session() as session:
        out: dict[str, list[str]] = {}
        for row in session.scalars(select(ImportError_).order_by(ImportError_.id)):
            out.setdefault(Path(row.fileloc).name, []).append(row.message)
        return out


def test_second_file_is_an_import_error_and_the_first_keeps_the_dag(settings: Settings, db: Database) -> None:
    folder = settings.dags_folder
    a, b = folder / "a.py", folder / "b.py"
    write(a, ["dup", "only_a"], "from a", sleep=0.5)  # a's parse ends last: the lower path still wins
    write(b, ["dup", "only_b"], "from b")
    processor = DagProcessor(settings, db)
    stats = processor.refresh(NOW)
    assert stats.errors == 1
    assert bound(db, "dup") == ("a.py", "from a", True)
    assert bound(db, "only_b") == ("b.py", "from b", True)  # b's other DAGs are stored as usual
    real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    expected = f"Ignoring DAG dup from {real_b} - also found in {real_a}"
    assert import_errors(db) == {"b.py": [expected]}

    for n in range(2):  # whichever file changes, the DAG does not flip
        write(b, ["dup", "only_b"], "from b, edited")
        processor.refresh(NOW)
        assert bound(db, "dup") == ("a.py", "from a, edited" if n else "from a", True)
        assert import_errors(db) == {"b.py": [expected]}
        write(a, ["dup", "only_a"], "from a, edited")
        processor.refresh(NOW)
        assert bound(db, "dup") == ("a.py", "from a, edited", True)
        assert import_errors(db) == {"b.py": [expected]}

    # A file added later with a lower path does not take the DAG from its owner.
    write(folder / "0.py", ["dup"], "from 0")
    processor.refresh(NOW)
    assert bound(db, "dup") == ("a.py", "from a, edited", True)
    real_0 = os.path.realpath(folder / "0.py")
    assert import_errors(db) == {
        "0.py": [f"Ignoring DAG dup from {real_0} - also found in {real_a}"],
        "b.py": [expected],
    }
    (folder / "0.py").unlink()
    processor.refresh(NOW)

    # a stops defining it: b takes it over in the same pass, though b did not change.
    b_stat = b.stat().st_mtime
    write(a, ["only_a"], "from a, without dup")
    processor.refresh(NOW)
    assert b.stat().st_mtime == b_stat
    assert bound(db, "dup") == ("b.py", "from b, edited", True)
    assert import_errors(db) == {}
    # ... and now a defining it again is the duplicate.
    write(a, ["dup", "only_a"], "from a, again")
    processor.refresh(NOW)
    assert bound(db, "dup") == ("b.py", "from b, edited", True)
    assert import_errors(db) == {"a.py": [f"Ignoring DAG dup from {real_a} - also found in {real_b}"]}


def test_deleting_the_owner_hands_the_dag_to_the_other_file(settings: Settings, db: Database) -> None:
    folder = settings.dags_folder
    write(folder / "a.py", ["dup"], "from a")
    write(folder / "b.py", ["dup"], "from b")
    processor = DagProcessor(settings, db)
    processor.refresh(NOW)
    assert bound(db, "dup") == ("a.py", "from a", True)
    (folder / "a.py").unlink()
    processor.refresh(NOW)
    assert bound(db, "dup") == ("b.py", "from b", True)
    assert import_errors(db) == {}


def test_hand_over_survives_a_processor_stopped_mid_pass(settings: Settings, db: Database) -> None:
    """The other file is marked for parsing in the DB, not only in the processor's memory."""
    folder = settings.dags_folder
    write(folder / "a.py", ["dup"], "from a")
    write(folder / "b.py", ["dup"], "from b", sleep=3.0)  # slow to import: still parsing when the pass is stopped
    DagProcessor(settings, db).refresh(NOW)
    write(folder / "a.py", ["other"], "from a")
    first = DagProcessor(settings, db)
    first.start(NOW)  # a processor's first pass parses every file; a.py is stored before b.py's child ends
    while bound(db, "dup")[2]:  # until a.py's result is stored: dup is free, b.py is marked for parsing
        first.collect(NOW)
        time.sleep(0.01)
    first.close()  # stopped before it parsed b.py again
    assert bound(db, "dup") == ("a.py", "from a", False)
    stats = DagProcessor(settings, db).refresh(NOW)
    assert "b.py" in [Path(p[0]).name for p in stats.parsed]
    assert bound(db, "dup") == ("b.py", "from b", True)
