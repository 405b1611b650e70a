"""``headrace dag-processor``'s loop (:func:`run_dag_processor`) parses on its own; a scheduler with
``scheduler.standalone_dag_processor`` gets no processor of its own."""

from __future__ import annotations

import threading

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.dagfiles.standalone import run_dag_processor
from headrace.db.engine import Database
from headrace.db.models import DagModel
from headrace.scheduler.start import _own_processor

DAG_FILE = """
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("parsed_apart", schedule=None):
    EmptyOperator(task_id="t")
"""


def test_dag_processor_loop_stores_the_dags(settings: Settings, db: Database) -> None:
    (settings.dags_folder / "parsed_apart.py").write_text(DAG_FILE)
    passes = run_dag_processor(settings, db, DagProcessor(settings, db), num_passes=1, stop=threading.Event())
    assert passes == 1
    with db.session() as session:
        assert list(session.scalars(select(DagModel.dag_id))) == ["parsed_apart"]


def test_stopped_dag_processor_returns_at_once(settings: Settings, db: Database) -> None:
    stop = threading.Event()
    stop.set()
    assert run_dag_processor(settings, db, DagProcessor(settings, db), stop=stop) == 0


def test_standalone_dag_processor_setting_leaves_the_scheduler_without_one(settings: Settings, db: Database) -> None:
    assert isinstance(_own_processor(settings, db), DagProcessor)
    apart = settings.with_overrides({"scheduler": {"standalone_dag_processor": True}})
    assert _own_processor(apart, db) is None
