"""Commands that need a live scheduler: standalone end to end, trigger --wait, backfill."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, TaskInstance, TaskTry
from tests.waiting import wait_until

Cli = Any  # the `cli` fixture in conftest.py

DAILY_DAG = """
from datetime import datetime
from headrace import DAG
from headrace.operators import BashOperator

with DAG("cli_daily", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False):
    BashOperator(task_id="say", bash_command="echo interval {{ data_interval_start }} to {{ data_interval_end }}")
"""


@pytest.fixture
def scheduler(cli_env: dict[str, str], cli: Cli) -> Iterator[subprocess.Popen[bytes]]:
    assert cli("db", "migrate").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "headrace", "scheduler"], env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    yield proc
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]


def test_standalone_runs_the_example_pipeline(cli_env: dict[str, str], settings: Settings, db: Database) -> None:
    # the deployment default: new DAGs start paused; standalone unpauses the bundled examples it creates
    env = {k: v for k, v in cli_env.items() if k != "HEADRACE__CORE__DAGS_ARE_PAUSED_AT_CREATION"}
    (settings.dags_folder / "mine.py").write_text(
        "from headrace import DAG\nfrom headrace.operators import EmptyOperator\n\n"
        'with DAG("mine"):\n    EmptyOperator(task_id="t")\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "headrace", "standalone"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:

        def manual_run_done() -> bool:
            with db.session() as s:
                states = s.scalars(select(DagRun.state).where(DagRun.run_type == "manual")).all()
            return bool(states) and states[0] in ("success", "failed")

        wait_until(manual_run_done, 120, "the triggered example pipeline", interval=0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    with db.session() as s:
        run = s.scalars(select(DagRun).where(DagRun.run_type == "manual")).one()
    assert run.state == "success", text[-3000:]
    report = settings.home / "reports" / f"penguins_{run.logical_date:%Y-%m-%d}.md"
    body = report.read_text()
    # 344 penguins in the CSV, 11 with a missing measurement or sex: 146 + 68 + 119 = 333 remain.
    assert "| Adelie | 146 |" in body and "| Chinstrap | 68 |" in body and "| Gentoo | 119 |" in body
    assert "Heaviest species on average: **Gentoo**" in body
    assert f"succeeded; report: {report}" in " ".join(text.split())
    with db.session() as s:
        paused = {d.dag_id: d.is_paused for d in s.scalars(select(DagModel))}
    assert paused["mine"] is True and paused["example_penguins_report"] is False


def test_trigger_wait_and_backfill(
    cli: Cli, scheduler: subprocess.Popen[bytes], dags_folder: Path, db: Database
) -> None:
    (dags_folder / "cli_daily.py").write_text(textwrap.dedent(DAILY_DAG))

    def parsed() -> bool:
        return "cli_daily" in cli("dags", "list").out

    wait_until(parsed, 60, "the DAG file to be parsed", interval=0.2)
    r = cli("dags", "trigger", "cli_daily", "--conf", '{"who": "test"}', "--wait")
    assert r.code == 0, r.out + r.err
    assert "finished: success" in r.out

    r = cli("dags", "backfill", "cli_daily", "-s", "2026-02-01", "-e", "2026-02-03")
    assert r.code == 0, r.out + r.err
    assert "3 new DAG run(s)" in r.out and "3 succeeded, 0 failed" in r.out
    with db.session() as s:
        runs = s.scalars(select(DagRun).where(DagRun.run_type == "backfill").order_by(DagRun.logical_date)).all()
        assert [r.run_id for r in runs] == [f"backfill__2026-02-0{d}T00:00:00+00:00" for d in (1, 2, 3)]
        assert all(r.state == "success" for r in runs)
        # Each backfilled task instance ran exactly once.
        per_ti = s.execute(select(TaskTry.task_instance_id, func.count()).group_by(TaskTry.task_instance_id)).all()
        assert per_ti and all(n == 1 for _, n in per_ti)
        ti = s.scalars(select(TaskInstance).where(TaskInstance.run_id == runs[0].run_id)).one()
        log_path = s.scalars(select(TaskTry.log_path).where(TaskTry.task_instance_id == ti.id)).one()
    # Airflow 3's "@daily" (CronTriggerTimetable): the data interval of a run is the instant it fires
    assert "interval 2026-02-01T00:00:00+00:00 to 2026-02-01T00:00:00+00:00" in Path(log_path).read_text()
    # A second backfill of the same range creates nothing new.
    r = cli("dags", "backfill", "cli_daily", "-s", "2026-02-01", "-e", "2026-02-03")
    assert r.code == 0 and "0 new DAG run(s)" in r.out
