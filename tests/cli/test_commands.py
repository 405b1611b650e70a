from __future__ import annotations

import json
import socket
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.migrate import head_revision
from headrace.db.models import DagRun, DagVersion, TaskInstance, TaskTry

Cli = Any  # the `cli` fixture in conftest.py: cli(*args) -> CliResult(code, out, err)

GOOD_DAG = """
from datetime import datetime
from headrace import DAG, task
from headrace.operators import BashOperator

with DAG("cli_demo", schedule=None, start_date=datetime(2026, 1, 1), params={"n": 3}):
    @task
    def numbers(params: dict) -> list[int]:
        return list(range(params["n"]))

    @task
    def total(values: list[int]) -> int:
        print(f"total is {sum(values)}")
        return sum(values)

    echo = BashOperator(task_id="echo", bash_command="echo run {{ run_id }}")
    total(numbers()) >> echo
"""

FAILING_DAG = """
from datetime import datetime
from headrace import DAG, task

with DAG("cli_fails", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def boom() -> None:
        raise ValueError("no good")

    boom()
"""


def test_migrate_and_config_list(cli: Cli) -> None:
    r = cli("db", "migrate")
    assert r.code == 0, r.err
    assert f"revision {head_revision()}" in r.out
    r = cli("config", "list", "--section", "core")
    assert r.code == 0, r.err
    line = next(line for line in r.out.splitlines() if "core.parallelism" in line)
    assert "4" in line and "env" in line


def test_bad_config_is_one_line(cli_subprocess: Cli, cli_env: dict[str, str]) -> None:
    cli_env["HEADRACE__CORE__PARALLELISM"] = "zero"
    r = cli_subprocess("config", "list")
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        "error: core.parallelism (from env HEADRACE__CORE__PARALLELISM): expected int, got 'zero'"
    ]


ENTRY_POINT = [
    (("db", "migrate"), 0, f"revision {head_revision()}"),
    (("config", "list", "--section", "core"), 0, "core.parallelism"),
    (("dags", "list"), 0, "DAGs (0)"),
    (("tasks", "list", "no_such_dag"), 1, "error: no DAG with dag_id 'no_such_dag'"),
    (("pools", "list"), 0, "default_pool"),
    (("variables", "list"), 0, "┃ key ┃ value ┃"),
    (("connections", "list"), 0, "┃ conn_id ┃ type ┃"),
    (("assets", "list"), 0, "assets (0)"),
    (("users", "list"), 0, "┃ username ┃ role ┃"),
    (("ps",), 0, "running tries (0)"),
]
"""A command of each group that needs nothing but a migrated database, its exit code and a line it prints."""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the entry point, not SQL: one database
@pytest.mark.parametrize(("args", "code", "says"), ENTRY_POINT, ids=[" ".join(a[:2]) for a, _, _ in ENTRY_POINT])
def test_each_command_group_through_python_m_headrace(
    cli_subprocess: Cli, args: tuple[str, ...], code: int, says: str
) -> None:
    """The other tests run commands in forked children of a warm process (conftest.py); these go through
    ``python -m headrace`` itself, as a user's shell does."""
    r = cli_subprocess(*args)
    assert r.code == code, r.out + r.err
    assert says in r.out + r.err


def test_unknown_dag_is_one_line(cli: Cli) -> None:
    assert cli("db", "migrate").code == 0
    r = cli("dags", "trigger", "no_such_dag")
    assert r.code == 1
    assert len(r.err.strip().splitlines()) == 1 and "no_such_dag" in r.err
    r = cli("dags", "pause", "no_such_dag")
    assert r.code == 1 and "no_such_dag" in r.err


def test_unmigrated_database_says_what_to_run(cli: Cli, cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["HEADRACE__DATABASE__URL"] = f"sqlite:///{tmp_path / 'empty.db'}"
    r = cli("dags", "list")
    assert r.code == 1 and "is empty; run `headrace db migrate`" in r.err


def test_dags_test_runs_to_the_end_and_tasks_commands(cli: Cli, dags_folder: Path, db: Database) -> None:
    (dags_folder / "cli_demo.py").write_text(textwrap.dedent(GOOD_DAG))
    assert cli("db", "migrate").code == 0
    r = cli("dags", "test", "cli_demo", "2026-03-01")
    assert r.code == 0, r.out + r.err
    for task_id in ("numbers", "total", "echo"):
        assert f"cli_demo.{task_id} try 1: success" in r.out
    assert "success" in r.out.splitlines()[-1]

    with db.session() as s:
        run = s.scalars(select(DagRun).where(DagRun.dag_id == "cli_demo")).one()
        assert run.state == "success" and run.run_id == "test__2026-03-01T00:00:00+00:00"
        tries = s.scalars(select(TaskTry)).all()
        assert len(tries) == 3 and all(t.pid and t.exit_code == 0 for t in tries)
    log = Path(tries[0].log_path).parent.parent / "task_id=total" / "attempt=1.log"
    assert "total is 3" in log.read_text()

    r = cli("tasks", "states-for-dag-run", "cli_demo", run.run_id)
    assert r.code == 0 and r.out.count("success") >= 3
    r = cli("tasks", "list", "cli_demo")
    assert r.code == 0 and "numbers" in r.out and "@task" in r.out
    r = cli("tasks", "test", "cli_demo", "total", "2026-03-01")
    assert r.code == 0, r.out + r.err
    assert "total is 3" in r.out  # pulled the XCom of the earlier run with that logical date
    r = cli("dags", "list-runs", "cli_demo")
    assert r.code == 0 and "test__2026-03-01" in r.out


def test_dags_test_failure_exits_1(cli: Cli, dags_folder: Path) -> None:
    (dags_folder / "cli_fails.py").write_text(textwrap.dedent(FAILING_DAG))
    assert cli("db", "migrate").code == 0
    r = cli("dags", "test", "cli_fails")
    assert r.code == 1
    assert "cli_fails.boom try 1: failed" in r.out


def test_import_errors_listed_with_line(cli: Cli, dags_folder: Path) -> None:
    (dags_folder / "broken.py").write_text("from headrace import DAG\n\nx = (\n")
    (dags_folder / "cli_demo.py").write_text(textwrap.dedent(GOOD_DAG))
    assert cli("db", "migrate").code == 0
    # dags test parses the folder; the broken file must not stop the good DAG.
    assert cli("dags", "test", "cli_demo").code == 0
    r = cli("dags", "list-import-errors")
    assert r.code == 1
    assert "broken.py" in r.out and "SyntaxError" in r.out and "3" in r.out
    r = cli("dags", "list")
    assert "cli_demo" in r.out and "failed to import" in r.out


def test_bad_conf_and_dates(cli: Cli, dags_folder: Path) -> None:
    (dags_folder / "cli_demo.py").write_text(textwrap.dedent(GOOD_DAG))
    assert cli("db", "migrate").code == 0
    assert cli("dags", "test", "cli_demo", "2026-01-01").code == 0
    r = cli("dags", "trigger", "cli_demo", "--conf", "[1, 2]")
    assert r.code == 1 and "JSON object" in r.err
    r = cli("dags", "trigger", "cli_demo", "--conf", "{nope")
    assert r.code == 1 and "not valid JSON" in r.err
    r = cli("dags", "trigger", "cli_demo", "--run-id", "nightly/1")  # would break the API's routes
    assert r.code == 1 and r.err.strip().splitlines() == [
        "error: run_id 'nightly/1' does not match scheduler.allowed_run_id_pattern '^[A-Za-z0-9_.~:+-]+$'"
    ]
    r = cli("dags", "trigger", "cli_demo", "--logical-date", "yesterday")
    assert r.code == 1 and "not an ISO date" in r.err


def test_ps_flags_a_recorded_pid_that_is_gone(cli: Cli, db: Database) -> None:
    assert cli("db", "migrate").code == 0
    dead = psutil.Popen(["true"])
    dead.wait()
    now = datetime.now(UTC)
    with db.session() as s:
        v = DagVersion(dag_id="d", version_hash="h", serialized={}, created_at=now)
        s.add(v)
        s.flush()
        run = DagRun(
            dag_id="d", run_id="r1", run_type="manual", state="running", conf={}, dag_version_id=v.id, queued_at=now
        )
        s.add(run)
        s.flush()
        ti = TaskInstance(dag_run_id=run.id, dag_id="d", run_id="r1", task_id="t", state="running", try_number=1)
        s.add(ti)
        s.flush()
        me = psutil.Process()
        s.add(
            TaskTry(
                task_instance_id=ti.id,
                dag_id="d",
                run_id="r1",
                task_id="t",
                try_number=1,
                state="running",
                hostname=socket.gethostname(),
                supervisor_pid=me.pid,
                supervisor_start_time=me.create_time(),
                pid=dead.pid,
                process_start_time=now.timestamp(),
                start_date=now,
                heartbeat_at=now,
                log_path="/dev/null",
            )
        )
    r = cli("ps")
    assert r.code == 0, r.err
    assert "MISMATCH: pid gone" in r.out
    assert f"{me.pid}" in r.out and "ok" in r.out  # the supervisor (this test process) is alive


WARNED_DAG = """
from headrace import DAG
from headrace.operators import BashOperator

with DAG("cli_warned", default_args={"email_on_failure": True, "no_task_takes_this": 1}):
    BashOperator(task_id="t", bash_command="true", sla=60)
"""


def test_dags_list_shows_dag_warnings(cli: Cli, dags_folder: Path) -> None:
    (dags_folder / "cli_warned.py").write_text(textwrap.dedent(WARNED_DAG))
    assert cli("db", "migrate").code == 0
    assert cli("dags", "test", "cli_warned").code == 0  # parses the folder (stores the warnings)
    r = cli("dags", "list")
    assert r.code == 0 and "cli_warned" in r.out
    assert "3 DAG warning(s)" in r.out, r.out  # email_on_failure, no_task_takes_this, sla
    for name in ("email_on_failure", "no_task_takes_this", "sla"):
        assert name in r.out, r.out


def test_trigger_refuses_a_conf_over_max_conf_bytes(cli: Cli, settings: Settings, db: Database) -> None:
    """The API's limit (api.max_conf_bytes, 64 KiB by default), with a one-line error and no run created."""
    (settings.dags_folder / "cli_demo.py").write_text(textwrap.dedent(GOOD_DAG))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    r = cli("dags", "trigger", "cli_demo", "--conf", json.dumps({"blob": "x" * 100_000}))
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        "error: conf is 100,011 bytes of JSON, above the limit of 65,536 bytes (api.max_conf_bytes)"
    ]
    with db.read_session() as session:
        assert list(session.scalars(select(DagRun.run_id))) == []
    r = cli("dags", "trigger", "cli_demo", "--conf", json.dumps({"blob": "x" * 60_000}), "--run-id", "fits")
    assert r.code == 0, r.err
    with db.read_session() as session:
        assert list(session.scalars(select(DagRun.run_id))) == ["fits"]
