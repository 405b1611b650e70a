"""``tasks render|state|clear``, ``dags show|next-execution`` and ``pools list|set|delete`` through the real CLI,
on SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, Pool, TaskInstance

Cli = Any  # the `cli` fixture in conftest.py: cli(*args) -> CliResult(code, out, err)

SHAPED_DAG = """
from datetime import datetime
from headrace import DAG
from headrace.operators import BashOperator, EmptyOperator

with DAG("shaped", schedule="30 6 * * *", start_date=datetime(2026, 1, 1), catchup=False):
    start = EmptyOperator(task_id="start")
    left = BashOperator(task_id="left", bash_command="echo left {{ ds }} {{ run_id }} {{ params.get('who', 'nobody') }}")
    right = BashOperator(task_id="right", bash_command="echo key={{ var.value.api_token }}")
    end = EmptyOperator(task_id="end")
    start >> [left, right] >> end
"""

FAILS_DAG = """
from datetime import datetime
from headrace import DAG, task

with DAG("fails", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def fine() -> int:
        return 1

    @task
    def boom() -> None:
        raise ValueError("no good")

    @task
    def after() -> None:
        pass

    fine()
    boom() >> after()
"""


def parse(settings: Settings, db: Database, source: str, name: str) -> None:
    (settings.dags_folder / name).write_text(textwrap.dedent(source))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0


def test_dags_show_lists_tasks_in_dependency_order_with_edges(cli: Cli, settings: Settings, db: Database) -> None:
    parse(settings, db, SHAPED_DAG, "shaped.py")
    r = cli("dags", "show", "shaped")
    assert r.code == 0, r.err
    lines = [line.rstrip() for line in r.out.splitlines()]
    assert lines[0] == "DAG shaped: 4 task(s), 4 edge(s), schedule 30 6 * * *"
    assert lines[1:] == [
        "1. start (EmptyOperator)",
        "     >> left",
        "     >> right",
        "2. left (BashOperator)",
        "     >> end",
        "3. right (BashOperator)",
        "     >> end",
        "4. end (EmptyOperator)",
    ]
    r = cli("dags", "show", "no_such_dag")
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1 and "no_such_dag" in r.err


AUTHORED_DAG = """
from headrace import DAG, Label, TaskGroup, setup, task, task_group, teardown
from headrace.operators import EmptyOperator

with DAG("authored", schedule=None):
    @setup
    def make() -> None: ...

    @teardown
    def drop() -> None: ...

    @task
    def double(x: int) -> int:
        return 2 * x

    @task_group
    def per_item(x: int) -> None:
        double(x)

    start = EmptyOperator(task_id="start")
    with TaskGroup("outer") as outer:
        with TaskGroup("inner"):
            EmptyOperator(task_id="a")
        EmptyOperator(task_id="b")
    s = make()
    start >> Label("go") >> outer >> drop().as_teardown(setups=s)
    s >> double.expand(x=[1, 2]) >> per_item.expand(x=[3, 4])
"""


def test_dags_show_marks_groups_labels_setup_teardown_and_mapping(cli: Cli, settings: Settings, db: Database) -> None:
    parse(settings, db, AUTHORED_DAG, "authored.py")
    r = cli("dags", "show", "authored")
    assert r.code == 0, r.err
    lines = [line.rstrip() for line in r.out.splitlines()]
    assert lines[1:4] == [
        "group outer: 2 task(s)",
        "group outer.inner: 1 task(s)",
        "group per_item (mapped): 1 task(s)",
    ]
    assert '     >> outer.inner.a  "go"' in lines and '     >> outer.b  "go"' in lines
    tasks = {line.split(". ", 1)[1] for line in lines if ". " in line and not line.startswith("group")}
    assert tasks >= {
        "make (@task) [setup]",
        "drop (@task) [teardown]",
        "double (@task) [mapped]",
        "per_item.double (@task) [mapped with group per_item]",
        "start (EmptyOperator)",
    }


def test_next_execution_prints_the_next_logical_dates(cli: Cli, settings: Settings, db: Database) -> None:
    parse(settings, db, SHAPED_DAG, "shaped.py")
    with db.session() as s:
        model = s.get(DagModel, "shaped")
        assert model is not None and model.next_logical_date is not None
        first = model.next_logical_date
        model.is_paused = False
    r = cli("dags", "next-execution", "shaped", "-n", "3")
    assert r.code == 0, r.err
    dates = [datetime.fromisoformat(line) for line in r.out.split()]
    assert dates == [first, first + timedelta(days=1), first + timedelta(days=2)]
    assert all((d.hour, d.minute) == (6, 30) for d in dates)
    with db.session() as s:
        model = s.get(DagModel, "shaped")
        assert model is not None
        model.is_paused = True
    r = cli("dags", "next-execution", "shaped")
    assert r.code == 0 and "paused" in r.out and r.out.split()[-1] == first.isoformat()
    r = cli("dags", "next-execution", "shaped", "-n", "0")
    assert r.code != 0 and "0" in r.err


def test_next_execution_of_an_unscheduled_dag_is_none(cli: Cli, settings: Settings, db: Database) -> None:
    parse(settings, db, FAILS_DAG, "fails.py")
    r = cli("dags", "next-execution", "fails", "-n", "2")
    assert r.code == 0, r.err
    assert r.out.strip().splitlines()[-1] == "None"


def test_tasks_render_prints_rendered_fields_of_a_run(cli: Cli, settings: Settings, db: Database) -> None:
    parse(settings, db, SHAPED_DAG, "shaped.py")
    assert cli("variables", "set", "api_token", "tok-very-secret-1234").code == 0
    r = cli("dags", "trigger", "shaped", "-r", "r_render", "-l", "2026-02-03T06:30:00+00:00", "-c", '{"who": "ann"}')
    assert r.code == 0, r.err
    r = cli("tasks", "render", "shaped", "left", "r_render")
    assert r.code == 0, r.err
    assert "# property: bash_command" in r.out
    assert "echo left 2026-02-03 r_render ann" in r.out  # the run's date, id and conf
    r = cli("tasks", "render", "shaped", "left", "2026-02-03T06:30:00+00:00")  # by logical date: the same run
    assert r.code == 0 and "echo left 2026-02-03 r_render ann" in r.out
    r = cli("tasks", "render", "shaped", "left", "2026-05-01")  # no run then: made up, no conf
    assert r.code == 0 and "echo left 2026-05-01 test__2026-05-01T00:00:00+00:00 nobody" in r.out
    r = cli("tasks", "render", "shaped", "right", "r_render")
    assert r.code == 0, r.err
    assert "echo key=***" in r.out and "tok-very-secret-1234" not in r.out
    r = cli("tasks", "render", "shaped", "left", "no-such-run")
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1 and "no-such-run" in r.err
    r = cli("tasks", "render", "shaped", "nope", "r_render")
    assert r.code == 1 and "nope" in r.err


def _states(db: Database, dag_id: str) -> dict[str, str]:
    with db.session() as s:
        rows = s.execute(
            select(TaskInstance.task_id, TaskInstance.state)
            .join(DagRun, DagRun.id == TaskInstance.dag_run_id)
            .where(DagRun.dag_id == dag_id)
        )
        return {task_id: state for task_id, state in rows}


def test_tasks_state_and_clear(cli: Cli, cli_env: dict[str, str], settings: Settings, db: Database) -> None:
    (settings.dags_folder / "fails.py").write_text(textwrap.dedent(FAILS_DAG))
    r = cli("dags", "test", "fails", "2026-03-01")
    assert r.code == 1, r.out + r.err
    run_id = "test__2026-03-01T00:00:00+00:00"
    assert _states(db, "fails") == {"fine": "success", "boom": "failed", "after": "upstream_failed"}
    r = cli("tasks", "state", "fails", "boom", run_id)
    assert (r.code, r.out.strip()) == (0, "failed")
    r = cli("tasks", "state", "fails", "after", "2026-03-01")  # by logical date, as Airflow's
    assert (r.code, r.out.strip()) == (0, "upstream_failed")
    r = cli("tasks", "state", "fails", "nope", run_id)
    assert r.code == 1 and "nope" in r.err
    r = cli("tasks", "state", "fails", "boom", "no-run")
    assert r.code == 1 and "no-run" in r.err
    r = cli("tasks", "state", "fails", "boom", "2026-03-02")
    assert r.code == 1 and "2026-03-02" in r.err

    def clear(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "headrace", "tasks", "clear", "fails", *args]
        return subprocess.run(cmd, env=cli_env, input=answer, capture_output=True, text=True, timeout=60, check=False)

    # The dry-run list, then "no": nothing changes.
    p = clear("-t", "^boo", "--downstream", answer="n\n")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "boom" in p.stdout and "after" in p.stdout and "fine" not in p.stdout
    header = next(line for line in p.stdout.splitlines() if "run_id" in line)
    assert [c.strip() for c in header.split("┃")[1:5]] == ["run_id", "task_id", "state", "not cleared because"]
    assert "nothing cleared" in p.stdout
    assert _states(db, "fails")["boom"] == "failed"
    # Without --downstream only the matching task; an end date before the run clears nothing.
    p = clear("-t", "^boom$", "-e", "2026-02-01", answer="y\n")
    assert p.returncode == 0 and "nothing to clear" in p.stdout
    p = clear("--only-failed", answer="y\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "cleared 2 task instance(s)" in p.stdout
    assert _states(db, "fails") == {"fine": "success", "boom": "none", "after": "none"}
    with db.session() as s:
        assert s.scalars(select(DagRun.state).where(DagRun.dag_id == "fails")).one() == "queued"
    r = cli("tasks", "clear", "fails", "-t", "^fine$", "--upstream", "-s", "2026-03-01", "--yes")
    assert r.code == 0 and "cleared 1 task instance(s)" in r.out
    assert _states(db, "fails")["fine"] == "none"
    r = cli("tasks", "clear", "fails", "-t", "(", "--yes")
    assert r.code == 1 and "regular expression" in r.err


def test_pools_set_list_delete(cli: Cli, db: Database) -> None:
    r = cli("pools", "set", "etl", "4", "nightly loads")
    assert r.code == 0 and "pool etl has 4 slot(s)" in r.out
    r = cli("pools", "set", "etl", "2", "fewer")  # an existing pool: changed
    assert r.code == 0
    with db.session() as s:
        pool = s.get(Pool, "etl")
        assert pool is not None and (pool.slots, pool.description) == (2, "fewer")
    r = cli("pools", "list")
    assert r.code == 0
    row = next(line for line in r.out.splitlines() if " etl " in line)
    assert [c.strip() for c in row.split("│")[1:7]] == ["etl", "2", "0", "0", "2", "fewer"]
    assert "default_pool" in r.out
    r = cli("pools", "set", "etl", "--", "-2", "x")
    assert r.code == 1 and "slots must be -1 (unlimited) or 0 to" in r.err
    r = cli("pools", "set", "etl", "--", "-1", "no limit")  # Airflow's unlimited
    assert r.code == 0 and "pool etl has unlimited slot(s)" in r.out
    row = next(line for line in cli("pools", "list").out.splitlines() if " etl " in line)
    assert [c.strip() for c in row.split("│")[1:7]] == ["etl", "-1", "0", "0", "unlimited", "no limit"]
    r = cli("pools", "delete", "default_pool")
    assert r.code == 1 and "default_pool cannot be deleted" in r.err
    r = cli("pools", "delete", "nope")
    assert r.code == 1 and "nope" in r.err
    r = cli("pools", "delete", "etl")
    assert r.code == 0
    with db.session() as s:
        assert s.get(Pool, "etl") is None


NAMED_DAG = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("named", dag_display_name="Nightly sales EU", schedule=None, start_date=datetime(2026, 1, 1)):
    EmptyOperator(task_id="only")
"""


def test_dag_display_name_in_dags_list_show_and_tasks_list(cli: Cli, settings: Settings, db: Database) -> None:
    """The CLI names a DAG as the UI does: its dag_display_name (the dag_id when none), the id beside it."""
    parse(settings, db, NAMED_DAG, "named.py")
    parse(settings, db, SHAPED_DAG, "shaped.py")
    listed = cli("dags", "list")
    assert listed.code == 0, listed.err
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in listed.out.splitlines() if "│" in line}
    assert rows["named"] == "Nightly sales EU"
    assert rows["shaped"] == "shaped"  # no display name: the dag_id, as Airflow
    shown = cli("dags", "show", "named")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[0] == "DAG Nightly sales EU (named): 1 task(s), 0 edge(s), schedule None"
    tasks = cli("tasks", "list", "named")
    assert tasks.code == 0 and "tasks of Nightly sales EU (named)" in tasks.out, tasks.out
    runs = cli("dags", "list-runs", "named")
    assert runs.code == 0 and "runs of Nightly sales EU (named)" in runs.out, runs.out
