"""The compatibility suite's ``compat_remap`` run, cleared and run again with a shorter list, three ways
(migrated, ``core.airflow_imports``, native), through the real DAG processor and scheduler loop with the
local executor, on SQLite and PostgreSQL: index 2 of the mapped task ends ``removed`` and the run succeeds."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.compat.migrate import migrate_path, write_results
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagModel, DagRun, TaskInstance
from headrace.scheduler.runs import trigger_dag
from headrace.scheduler.user_actions import clear_task_instances
from headrace.secrets_store import set_variable
from headrace.testing import FAST_LOOP, run_scheduler_until

from .conftest import AIRFLOW_DAGS, NATIVE_DAGS


def _folder(settings: Settings, way: str, tmp_path: Path) -> Settings:
    shutil.rmtree(settings.dags_folder)
    settings.dags_folder.mkdir()
    core = dict(FAST_LOOP["core"])
    if way == "native":
        shutil.copy(NATIVE_DAGS / "remap.py", settings.dags_folder)
    elif way == "airflow_imports":
        shutil.copy(AIRFLOW_DAGS / "remap.py", settings.dags_folder)
        core["airflow_imports"] = True
    else:
        source = tmp_path / "airflow"
        source.mkdir()
        shutil.copy(AIRFLOW_DAGS / "remap.py", source)
        results = migrate_path(source)
        assert [f for r in results for f in r.findings] == []
        write_results(source, results, settings.dags_folder)
    return settings.with_overrides({**FAST_LOOP, "core": core})


def _run(settings: Settings, db: Database, processor: DagProcessor) -> dict[tuple[str, int], str]:
    def ended() -> bool:
        with db.read_session() as session:
            return session.scalar(select(DagRun.state)) in ("success", "failed")

    assert run_scheduler_until(settings, db, ended, processor=processor, timeout=120)
    with db.read_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)).all()
        out = {(t, i): s for t, i, s in rows}
        out[("<run>", -1)] = str(session.scalar(select(DagRun.state)))
    return out


@pytest.mark.parametrize("way", ["migrated", "airflow_imports", "native"])
def test_cleared_run_expands_again_with_removed_indices(
    settings: Settings, db: Database, tmp_path: Path, way: str
) -> None:
    fast = _folder(settings, way, tmp_path)
    migrate(db)
    processor = DagProcessor(fast, db)
    processor.refresh(datetime.now(UTC))
    try:
        with db.session() as session:
            session.get_one(DagModel, "compat_remap").is_paused = False
            trigger_dag(session, "compat_remap", now=datetime.now(UTC))
        first = _run(fast, db, processor)
        assert first == {
            ("<run>", -1): "success",
            ("items", -1): "success",
            ("square", 0): "success",
            ("square", 1): "success",
            ("square", 2): "success",
            ("check", -1): "success",
        }
        with db.session() as session:
            set_variable(session, Encryptor.from_settings(fast), "compat_remap_length", "2")
            run = session.scalars(select(DagRun)).one()
            assert len(clear_task_instances(session, run, now=datetime.now(UTC)).cleared) == 5
        second = _run(fast, db, processor)
        assert second == {**first, ("square", 2): "removed"}  # check read [0, 1] (it asserts it)
    finally:
        processor.close()
