"""``map_index_template`` through the real scheduler and local executor, on SQLite and PostgreSQL: each mapped
index's label is rendered with its try's context when its code ends (also when it fails), stored as
``rendered_map_index`` and shown by the API, the task instance page and ``tasks states-for-dag-run``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

from sqlalchemy import select

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry
from headrace.scheduler.runs import trigger_dag
from tests.api.conftest import ClientAs, session_client
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

LABELS_DAG = """
    from headrace import DAG, task, get_current_context
    from headrace.operators import BashOperator

    @task
    def files():
        return ["a.csv", "b.csv", "c.csv"]

    @task(map_index_template="file {{ name }}")
    def load(path):
        context = get_current_context()
        context["name"] = path.upper()  # a value the task adds to its context, read by the template
        if path == "c.csv":
            raise RuntimeError("c.csv is broken")
        return path

    @task
    def own_label(x):
        get_current_context()["map_index_template"] = f"item {x} of {{{{ expanded_ti_count }}}}"
        return x

    @task(map_index_template="{{ not_in_context }}")
    def bad_template(x):
        return x

    @task(map_index_template="{{ also_missing }}")
    def fails_anyway(x):
        raise ValueError(f"its own error {x}")

    with DAG("labels", schedule=None) as dag:
        load.expand(path=files())
        own_label.expand(x=[1, 2])
        BashOperator.partial(task_id="echo", map_index_template="{{ task.bash_command }}").expand(
            bash_command=["echo one", "echo two"]
        )
        bad_template.expand(x=[1])
        fails_anyway.expand(x=[1])
"""


def test_labels_rendered_stored_and_shown(settings: Settings, db: Database, client_as: ClientAs) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "labels.py", LABELS_DAG)
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        run_id = trigger_dag(session, "labels", now=datetime.now(UTC)).run_id
    run_scheduler_until_done(fast, db, timeout=180)
    with db.read_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state, TaskInstance.rendered_map_index)
        ).all()
        errors = dict(session.execute(select(TaskTry.task_id, TaskTry.error).where(TaskTry.error.is_not(None))).all())
    got = {(t, i): (state, label) for t, i, state, label in rows}
    assert got == {
        ("files", -1): ("success", None),
        ("load", 0): ("success", "file A.CSV"),
        ("load", 1): ("success", "file B.CSV"),
        ("load", 2): ("failed", "file C.CSV"),  # rendered after the failure too
        ("own_label", 0): ("success", "item 1 of 2"),  # the task's own template, rendered with the context
        ("own_label", 1): ("success", "item 2 of 2"),
        ("echo", 0): ("success", "echo one"),
        ("echo", 1): ("success", "echo two"),
        ("bad_template", 0): ("failed", None),  # after a success, a template that cannot render fails the try
        ("fails_anyway", 0): ("failed", None),  # after a failure it is only logged: the task's error stands
    }, got
    assert errors["bad_template"].startswith("DagDefinitionError: cannot render map_index_template of task"), errors
    assert "not_in_context" in errors["bad_template"]
    assert errors["fails_anyway"] == "ValueError: its own error 1"

    viewer = client_as("viewer")
    base = f"/api/v1/dags/labels/dagRuns/{run_id}/taskInstances"
    listed = viewer.get(f"{base}/load/listMapped").json()["task_instances"]
    assert [t["rendered_map_index"] for t in listed] == ["file A.CSV", "file B.CSV", "file C.CSV"]
    assert viewer.get(f"{base}/echo/1").json()["rendered_map_index"] == "echo two"
    assert viewer.get(f"{base}/files").json()["rendered_map_index"] is None

    browser = session_client(viewer.app, db, "viewer")  # type: ignore[arg-type]
    page = browser.get(f"/dags/labels/runs/{run_id}/tasks/load", params={"map_index": 1})
    assert '<span id="ti-label">file B.CSV</span>' in page.text and "<title>load [file B.CSV]" in page.text
    index_list = browser.get(f"/dags/labels/runs/{run_id}/tasks/load")
    assert ">Label</th>" in index_list.text
    assert "t.rendered_map_index" in browser.get("/static/task_instance.js").text

    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
    env.update(HEADRACE_HOME=str(fast.home), HEADRACE__DATABASE__URL=fast.database_url, COLUMNS="250")
    out = subprocess.run(
        [sys.executable, "-m", "headrace", "tasks", "states-for-dag-run", "labels", run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "load[2] file C.CSV" in out.stdout and "echo[0] echo one" in out.stdout, out.stdout
