"""Clearing through ExternalTaskMarkers from the CLI (``tasks clear``: the listing names the other DAGs'
task instances) and the API (``clearTaskInstances``: a dry run lists them; past recursion_depth: 400), on
SQLite and PostgreSQL, after the DAGs really ran."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance
from headrace.testing import run_scheduler_until
from headrace.webapp import create_app
from tests.cli.conftest import Cli
from tests.integration.helpers import FAST, write_dag
from tests.integration.test_external_task import MARKED, WHEN, _all_done, _trigger


def _admin(settings: Settings, db: Database) -> TestClient:
    with db.session() as session:
        user = create_user(session, "admin-x", "correct horse battery", "admin", now=datetime.now(UTC))
        token, _ = create_token(session, user, "test", now=datetime.now(UTC))
    return TestClient(create_app(settings, db), headers={"Authorization": f"Bearer {token}"})


def _states(db: Database) -> dict[tuple[str, str], str]:
    with db.session() as session:
        return {(ti.dag_id, ti.task_id): ti.state for ti in session.scalars(select(TaskInstance))}


def test_cli_and_api_clear_the_marked_tasks_of_other_dags(settings: Settings, db: Database, cli: Cli) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "marked.py", MARKED.format(depth=10).replace("recursion_depth=10", "recursion_depth=2"))
    _trigger(fast, db, [("parent", WHEN), ("child", WHEN), ("grandchild", WHEN)])
    assert run_scheduler_until(fast, db, lambda: _all_done(db), timeout=180)
    run_id = f"manual__{WHEN.isoformat()}"
    api = _admin(settings, db)

    r = cli("tasks", "test", "child", "wait_parent", WHEN.isoformat())  # one poke, read by the CLI itself
    assert r.code == 0, r.out + r.err
    assert "Poking for tasks ['p1'] in dag parent on 2026-03-01T06:00:00+00:00" in r.out
    assert "wait_parent: success" in " ".join(r.out.split())

    body = {"dag_run_id": run_id, "task_ids": ["p1"], "include_downstream": True, "dry_run": True}
    r = api.post("/api/v1/dags/parent/clearTaskInstances", json=body)
    assert r.status_code == 200, r.text
    listed = {(t["dag_id"], t["task_id"]) for t in r.json()["task_instances"]}
    assert ("child", "c2") in listed and ("grandchild", "g2") in listed and ("child", "c_other") not in listed
    assert len(listed) == 7
    assert set(_states(db).values()) == {"success"}  # a dry run

    r = cli("tasks", "clear", "parent", "-t", "^p1$", "--downstream", "--yes")
    assert r.code == 0, r.err
    assert "task instances of parent to clear (7)" in r.out
    header = next(line for line in r.out.splitlines() if "run_id" in line)
    assert header.split()[:3] == ["┃", "dag_id", "┃"]
    rows = [line.split()[1::2] for line in r.out.splitlines() if line.split()[1:2] == ["grandchild"]]
    assert sorted(row[2] for row in rows) == ["g1", "g2"]  # dag_id, run_id, task_id, state
    assert "cleared 7 task instance(s)" in r.out
    states = _states(db)
    assert states[("grandchild", "g2")] == "none" and states[("grandchild", "g_other")] == "success"

    # a marker in the grandchild pointing back at the parent: clearing now goes 3 levels, past recursion_depth 2
    with db.session() as session:
        session.execute(TaskInstance.__table__.update().where(TaskInstance.dag_id == "parent").values(state="success"))
    write_dag(
        fast,
        "marked.py",
        MARKED.format(depth=2).replace(
            'EmptyOperator(task_id="g1") >> EmptyOperator(task_id="g2")',
            'EmptyOperator(task_id="g1") >> ExternalTaskMarker(task_id="g2", external_dag_id="parent", '
            'external_task_id="p1")',
        ),
    )
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:  # the runs keep their DAG version: move them to the new one
        for run in session.scalars(select(DagRun)):
            model = session.get(DagModel, run.dag_id)
            assert model is not None
            run.dag_version_id = session.scalars(
                select(DagVersion.id).where(
                    DagVersion.dag_id == run.dag_id, DagVersion.version_hash == model.version_hash
                )
            ).one()
    r = api.post("/api/v1/dags/parent/clearTaskInstances", json={**body, "dry_run": False})
    assert r.status_code == 400, r.text
    assert "Maximum recursion depth 2 reached for ExternalTaskMarker" in r.json()["detail"]
    assert _states(db)[("parent", "p1")] == "success"  # nothing was cleared
