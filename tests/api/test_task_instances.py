"""Task instances of a run that really ran: list, get, mark, clear (then the scheduler runs them again)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance
from headrace.db.transitions import set_ti_state
from headrace.scheduler.user_actions import clear_task_instances
from headrace.states import TaskInstanceState as TI
from tests.api.conftest import ClientAs, FinishedRun
from tests.integration.helpers import run_scheduler_until_done, tries_per_ti
from tests.pgbouncer import WITH_PGBOUNCER

RUN = "/api/v1/dags/demo/dagRuns/{run_id}"


def _url(fr: FinishedRun, rest: str = "") -> str:
    return RUN.format(run_id=fr.run_id) + rest


def test_list_and_get(api: TestClient, client_as: ClientAs, anon: TestClient, finished_run: FinishedRun) -> None:
    viewer = client_as("viewer")
    body = viewer.get(_url(finished_run, "/taskInstances")).json()
    assert body["total_entries"] == 4
    by_id = {t["task_id"]: t for t in body["task_instances"]}
    assert [t["task_id"] for t in body["task_instances"]] == ["after", "echo", "explode", "extract"]
    assert {k: t["state"] for k, t in by_id.items()} == {
        "extract": "success",
        "echo": "success",
        "explode": "failed",
        "after": "upstream_failed",
    }
    extract = by_id["extract"]
    assert extract["dag_id"] == "demo" and extract["dag_run_id"] == finished_run.run_id
    assert extract["try_number"] == 1 and extract["max_tries"] == 2 and extract["pool"] == "default_pool"
    assert extract["hostname"] and extract["pid"] > 0 and extract["peak_rss_bytes"] > 0
    assert extract["cpu_seconds"] is not None and extract["duration"] >= 0 and extract["end_reason"] == "success"
    assert by_id["explode"]["end_reason"] == "failed"
    assert by_id["after"]["try_number"] == 0 and by_id["after"]["hostname"] is None
    assert by_id["after"]["pid"] is None and by_id["after"]["peak_rss_bytes"] is None

    failed = viewer.get(
        _url(finished_run, "/taskInstances"), params=[("state", "failed"), ("state", "upstream_failed")]
    ).json()
    assert [t["task_id"] for t in failed["task_instances"]] == ["after", "explode"] and failed["total_entries"] == 2
    page = viewer.get(_url(finished_run, "/taskInstances"), params={"limit": 1, "offset": 3}).json()
    assert [t["task_id"] for t in page["task_instances"]] == ["extract"] and page["total_entries"] == 4
    assert viewer.get(_url(finished_run, "/taskInstances"), params={"state": "dreaming"}).status_code == 422

    assert viewer.get(_url(finished_run, "/taskInstances/extract")).json() == extract
    missing = viewer.get(_url(finished_run, "/taskInstances/nope"))
    assert missing.status_code == 404 and missing.json()["error"] == "TaskNotFound"
    assert viewer.get("/api/v1/dags/demo/dagRuns/nope/taskInstances").json()["error"] == "DagRunNotFound"
    assert viewer.get("/api/v1/dags/nope/dagRuns/x/taskInstances/extract").json()["error"] == "DagNotFound"
    assert anon.get(_url(finished_run, "/taskInstances")).status_code == 401
    assert anon.get(_url(finished_run, "/taskInstances/extract")).status_code == 401


@WITH_PGBOUNCER
def test_clear_failed_then_the_scheduler_runs_them_again(
    api: TestClient, client_as: ClientAs, db: Database, finished_run: FinishedRun
) -> None:
    clear = {"dag_run_id": finished_run.run_id, "task_ids": ["explode"], "include_downstream": True}
    viewer, operator = client_as("viewer"), client_as("operator")
    assert viewer.post("/api/v1/dags/demo/clearTaskInstances", json=clear).status_code == 403
    assert viewer.post(_url(finished_run, "/clear"), json={}).status_code == 403

    dry = operator.post("/api/v1/dags/demo/clearTaskInstances", json={**clear, "dry_run": True}).json()
    assert [t["task_id"] for t in dry["task_instances"]] == ["after", "explode"]
    assert [t["state"] for t in dry["task_instances"]] == ["upstream_failed", "failed"]  # unchanged
    assert api.get(_url(finished_run)).json()["state"] == "failed"

    done = operator.post("/api/v1/dags/demo/clearTaskInstances", json=clear)
    assert done.status_code == 200, done.text
    cleared = {t["task_id"]: t for t in done.json()["task_instances"]}
    assert set(cleared) == {"explode", "after"} and done.json()["not_cleared"] == []
    assert cleared["explode"]["state"] == "none" and cleared["explode"]["try_number"] == 1
    assert cleared["explode"]["max_tries"] == 1  # try_number + retries: its full retries again (retries=0)
    assert cleared["explode"]["end_date"] is None and cleared["explode"]["end_reason"] is None
    run = api.get(_url(finished_run)).json()
    assert run["state"] == "queued" and run["end_date"] is None
    with db.session() as session:
        assert not session.scalars(select(DagRun.callbacks_done)).one()

    run_scheduler_until_done(finished_run.settings, db)
    assert api.get(_url(finished_run)).json()["state"] == "failed"
    assert tries_per_ti(db)["explode"] == [1, 2]  # the cleared task instance ran again as try 2
    assert tries_per_ti(db)["extract"] == [1]  # not cleared: not run again
    explode = api.get(_url(finished_run, "/taskInstances/explode")).json()
    assert explode["state"] == "failed" and explode["try_number"] == 2

    # Clear the whole run, only the failed ones: explode and after.
    only_failed = operator.post(_url(finished_run, "/clear"), json={"only_failed": True}).json()
    assert sorted(t["task_id"] for t in only_failed["task_instances"]) == ["after", "explode"]
    assert api.get(_url(finished_run)).json()["state"] == "queued"


def test_clear_errors(api: TestClient, finished_run: FinishedRun) -> None:
    url = "/api/v1/dags/demo/clearTaskInstances"
    assert (
        api.post(url, json={"dag_run_id": finished_run.run_id, "task_ids": ["nope"]}).json()["error"] == "TaskNotFound"
    )
    assert api.post(url, json={"dag_run_id": "nope"}).json()["error"] == "DagRunNotFound"
    assert api.post("/api/v1/dags/nope/clearTaskInstances", json={"dag_run_id": "x"}).status_code == 404
    assert api.post(url, json={}).status_code == 422
    assert api.post("/api/v1/dags/demo/dagRuns/nope/clear", json={}).status_code == 404


def test_running_task_instances_are_not_cleared(api: TestClient, db: Database, finished_run: FinishedRun) -> None:
    # Put extract back to running as a supervisor would have it, then ask to clear everything.
    with db.session() as session:
        run = session.scalars(select(DagRun)).one()
        clear_task_instances(session, run, ["extract"], now=datetime.now(UTC))
        ti = session.scalars(select(TaskInstance).where(TaskInstance.task_id == "extract")).one()
        for a, b in ((TI.NONE, TI.SCHEDULED), (TI.SCHEDULED, TI.QUEUED), (TI.QUEUED, TI.RUNNING)):
            assert set_ti_state(session, ti.id, a, b)
    body = api.post(_url(finished_run, "/clear"), json={}).json()
    assert body["not_cleared"] == [
        {
            "task_id": "extract",
            "state": "running",
            "reason": "running",
            "dag_id": "demo",
            "dag_run_id": finished_run.run_id,
        }
    ]
    assert sorted(t["task_id"] for t in body["task_instances"]) == ["after", "echo", "explode"]
    assert api.get(_url(finished_run, "/taskInstances/extract")).json()["state"] == "running"


def test_mark_success_resumes_downstream(
    api: TestClient, client_as: ClientAs, db: Database, finished_run: FinishedRun
) -> None:
    url = _url(finished_run, "/taskInstances/explode")
    viewer, operator = client_as("viewer"), client_as("operator")
    assert viewer.patch(url, json={"state": "success"}).status_code == 403
    assert operator.patch(url, json={"state": "queued"}).status_code == 422
    assert operator.patch(_url(finished_run, "/taskInstances/nope"), json={"state": "success"}).status_code == 404

    dry = operator.patch(url, json={"state": "success", "dry_run": True}).json()
    assert [(t["task_id"], t["state"]) for t in dry["task_instances"]] == [("explode", "failed")]
    assert api.get(url).json()["state"] == "failed"

    marked = operator.patch(url, json={"state": "success"}).json()
    assert [(t["task_id"], t["state"]) for t in marked["task_instances"]] == [("explode", "success")]
    # Airflow's rule: the failed / upstream_failed downstream is cleared, the run decided again.
    assert api.get(_url(finished_run, "/taskInstances/after")).json()["state"] == "none"
    assert api.get(_url(finished_run)).json()["state"] == "queued"
    run_scheduler_until_done(finished_run.settings, db)
    assert api.get(_url(finished_run)).json()["state"] == "success"
    assert api.get(_url(finished_run, "/taskInstances/after")).json()["state"] == "success"
    assert tries_per_ti(db)["explode"] == [1]  # marked, not run again

    # Marking a leaf failed in a finished run: the run is decided again and fails.
    again = operator.patch(_url(finished_run, "/taskInstances/echo"), json={"state": "failed"}).json()
    assert [(t["task_id"], t["state"]) for t in again["task_instances"]] == [("echo", "failed")]
    assert operator.patch(_url(finished_run, "/taskInstances/echo"), json={"state": "failed"}).json() == {
        "task_instances": []
    }  # already failed: nothing changes
    run_scheduler_until_done(finished_run.settings, db)
    assert api.get(_url(finished_run)).json()["state"] == "failed"  # echo is a leaf
