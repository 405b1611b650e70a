"""``dags test`` runs its own DAG run and nothing else (Airflow's ``dags test``): no scheduled runs, no other DAG."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun

Cli = Any

DAGS = """
from datetime import datetime
from headrace import DAG
from headrace.operators import BashOperator

with DAG("scoped_paused", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=True):
    BashOperator(task_id="t", bash_command="true")

with DAG("scoped_other", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=True):
    BashOperator(task_id="t", bash_command="true")
"""


def test_dags_test_creates_and_runs_only_its_run(cli: Cli, settings: Settings, db: Database) -> None:
    (settings.dags_folder / "scoped.py").write_text(textwrap.dedent(DAGS))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    assert cli("dags", "pause", "scoped_paused").code == 0  # its schedule is due (catchup from 2026-01-01)
    assert cli("dags", "unpause", "scoped_other").code == 0  # due too
    r = cli("dags", "trigger", "scoped_other", "--run-id", "waiting")  # a queued run a scheduler would start
    assert r.code == 0, r.err

    r = cli("dags", "test", "scoped_paused", "2026-03-01")
    assert r.code == 0, r.out + r.err
    assert "unpaused for this run" in r.out

    with db.read_session() as session:
        rows = session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun.state).order_by(DagRun.dag_id)).all()
        assert session.get(DagModel, "scoped_paused").is_paused  # paused again
    assert [tuple(r) for r in rows] == [
        ("scoped_other", "waiting", "queued"),
        ("scoped_paused", "test__2026-03-01T00:00:00+00:00", "success"),
    ]
