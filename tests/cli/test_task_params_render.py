"""``headrace tasks render`` shows a task's own params (over the DAG's) with the run's conf on top, unless
``core.dag_run_conf_overrides_params`` is false; on both databases."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database

Cli = Any  # the `cli` fixture in conftest.py: cli(*args) -> CliResult(code, out, err)

DAG_FILE = """
    from datetime import datetime
    from headrace import DAG, Param
    from headrace.operators import BashOperator

    with DAG("rendered_params", schedule=None, start_date=datetime(2026, 1, 1), params={"who": "dag", "n": 1}):
        BashOperator(task_id="own", bash_command="echo {{ params.who }} {{ params.n }}", params={"who": Param("task")})
        BashOperator(task_id="dags", bash_command="echo {{ params.who }} {{ params.n }}")
"""


def test_tasks_render_uses_the_tasks_params_and_the_runs_conf(
    cli: Cli, cli_env: dict[str, str], settings: Settings, db: Database
) -> None:
    (settings.dags_folder / "rendered_params.py").write_text(textwrap.dedent(DAG_FILE))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    r = cli("tasks", "render", "rendered_params", "own", "2026-05-01")  # no run then: no conf
    assert r.code == 0, r.err
    assert "echo task 1" in r.out
    r = cli("tasks", "render", "rendered_params", "dags", "2026-05-01")
    assert r.code == 0 and "echo dag 1" in r.out
    r = cli("dags", "trigger", "rendered_params", "-r", "r1", "-c", '{"n": 7}')
    assert r.code == 0, r.err
    r = cli("tasks", "render", "rendered_params", "own", "r1")
    assert r.code == 0 and "echo task 7" in r.out
    cli_env["HEADRACE__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS"] = "false"  # params are constants then
    r = cli("tasks", "render", "rendered_params", "own", "r1")
    assert r.code == 0 and "echo task 1" in r.out
