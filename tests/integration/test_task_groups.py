"""A DAG with nested task groups and edge labels runs through the scheduler (SQLite and PostgreSQL).

Groups are a naming and UI concept: the scheduler sees prefixed task ids and
plain dependencies. The API then lists the prefixed ids, and the stored DAG
keeps the group tree and the labels.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.loader import load_dags
from headrace.db.engine import Database
from headrace.testing import run_dag_inline
from headrace.ui.queries import current_serialized
from headrace.webapp import create_app

DAG_FILE = '''
from datetime import datetime

from headrace import DAG, Label, TaskGroup, chain, task, task_group
from headrace.operators import EmptyOperator


@task
def extract() -> int:
    return 20


@task
def double(n: int) -> int:
    return n * 2


@task
def check(value: int) -> None:
    if value != 42:
        raise ValueError(f"got {value}")


@task_group
def transform(n):
    """Doubles, then adds."""

    @task
    def plus_two(v: int) -> int:
        return v + 2

    return plus_two(double(n))


with DAG("grouped_run", schedule=None, start_date=datetime(2026, 1, 1), default_args={"retries": 0}) as dag:
    start = EmptyOperator(task_id="start")
    with TaskGroup("outer", tooltip="the outer group", default_args={"retries": 1}) as outer:
        value = extract()
        with TaskGroup("inner") as inner:
            result = transform(value)
            check(result)
    end = EmptyOperator(task_id="end")
    start >> Label("begin") >> outer
    chain(outer, Label("done"), end)
'''

IDS = {
    "start",
    "outer.extract",
    "outer.inner.transform.double",
    "outer.inner.transform.plus_two",
    "outer.inner.check",
    "end",
}


def test_nested_groups_and_labels_run_to_success_and_show_in_the_api(
    tmp_path: Path, settings: Settings, db: Database
) -> None:
    path = tmp_path / "grouped_run.py"
    path.write_text(textwrap.dedent(DAG_FILE))
    (dag,) = load_dags(path)
    assert set(dag.task_ids) == IDS and dag.get_task("outer.extract").retries == 1
    fast = settings.with_overrides(
        {"scheduler": {"loop_interval": 0.2, "heartbeat_interval": 0.5}, "core": {"executor": "local"}}
    )
    result = run_dag_inline(dag, logical_date=datetime(2026, 3, 1, tzinfo=UTC), settings=fast)
    assert result.state == "success", result.task_states
    assert result.task_states == dict.fromkeys(IDS, "success")

    with db.session() as session:
        stored = current_serialized(session, "grouped_run")
        user = create_user(session, "ada", "correct horse battery", "viewer", now=datetime.now(UTC))
        token, _ = create_token(session, user, "t", now=datetime.now(UTC))
    assert set(stored["task_groups"]) == {"outer", "outer.inner", "outer.inner.transform"}
    assert stored["task_groups"]["outer.inner.transform"]["tooltip"] == "Doubles, then adds."
    assert stored["edge_info"] == {
        "start": {"outer.extract": {"label": "begin"}},
        "outer.inner.check": {"end": {"label": "done"}},
    }
    with TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"}) as client:
        tasks = client.get("/api/v1/dags/grouped_run/tasks").json()
        assert [t["task_id"] for t in tasks["tasks"]] == sorted(IDS)
        by_id = {t["task_id"]: t for t in tasks["tasks"]}
        assert by_id["outer.inner.check"]["upstream_task_ids"] == ["outer.inner.transform.plus_two"]
        assert by_id["end"]["upstream_task_ids"] == ["outer.inner.check"]
        tis = client.get(f"/api/v1/dags/grouped_run/dagRuns/{result.run_id}/taskInstances").json()
        assert {ti["task_id"]: ti["state"] for ti in tis["task_instances"]} == dict.fromkeys(IDS, "success")
