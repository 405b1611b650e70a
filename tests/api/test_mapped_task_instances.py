"""Mapped task instances in the REST API: ``map_index`` on every task instance, ``…/{task_id}/listMapped``,
``…/{task_id}/{map_index}``, and ``?map_index=`` on tries, XComs and logs (Airflow's shapes)."""

from __future__ import annotations

from datetime import UTC, datetime

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.scheduler.runs import trigger_dag
from tests.api.conftest import ClientAs
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

MAPPED_DAG = """
    from headrace import DAG, task

    @task
    def double(x):
        print(f"doubling {x}")
        return x * 2

    with DAG("mapped_api") as dag:
        double.expand(x=[1, 2, 3]) >> double.override(task_id="plain")(5)
"""


def test_mapped_task_instances_by_index(settings: Settings, db: Database, client_as: ClientAs) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "mapped_api.py", MAPPED_DAG)
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        run_id = trigger_dag(session, "mapped_api", now=datetime.now(UTC)).run_id
    run_scheduler_until_done(fast, db)
    viewer = client_as("viewer")
    base = f"/api/v1/dags/mapped_api/dagRuns/{run_id}/taskInstances"
    tasks = viewer.get("/api/v1/dags/mapped_api/tasks").json()["tasks"]
    assert {t["task_id"]: t["is_mapped"] for t in tasks} == {"double": True, "plain": False}

    listed = viewer.get(base).json()
    assert [(t["task_id"], t["map_index"], t["state"]) for t in listed["task_instances"]] == [
        ("double", 0, "success"),
        ("double", 1, "success"),
        ("double", 2, "success"),
        ("plain", -1, "success"),
    ]
    mapped = viewer.get(f"{base}/double/listMapped").json()
    assert mapped["total_entries"] == 3 and [t["map_index"] for t in mapped["task_instances"]] == [0, 1, 2]
    assert (
        viewer.get(f"{base}/double/listMapped", params={"limit": 1, "offset": 2}).json()["task_instances"][0][
            "map_index"
        ]
        == 2
    )
    assert viewer.get(f"{base}/plain/listMapped").json() == {"task_instances": [], "total_entries": 0}
    assert viewer.get(f"{base}/nope/listMapped").json()["error"] == "TaskNotFound"

    one = viewer.get(f"{base}/double/1").json()
    assert (one["task_id"], one["map_index"], one["state"], one["try_number"]) == ("double", 1, "success", 1)
    assert viewer.get(f"{base}/plain").json()["map_index"] == -1  # unmapped URLs as before
    assert viewer.get(f"{base}/double/3").status_code == 404
    without = viewer.get(f"{base}/double")
    assert without.status_code == 404 and "is mapped (3 task instances): add the map index" in without.json()["detail"]

    tries = viewer.get(f"{base}/double/tries", params={"map_index": 2}).json()
    assert [t["try_number"] for t in tries["tries"]] == [1]
    xcom = viewer.get(f"{base}/double/xcomEntries/return_value", params={"map_index": 2}).json()
    assert xcom["value"] == 6
    log = viewer.get(f"{base}/double/logs/1", params={"map_index": 1}).json()
    assert "doubling 2" in log["content"] and log["finished"]
    assert viewer.get(f"{base}/double/logs/1", params={"map_index": -2}).status_code == 422

    # one index marked, one index cleared ([task_id, map_index], Airflow's form); the others keep their state
    operator = client_as("operator")
    marked = operator.patch(f"{base}/double/2", json={"state": "failed"}).json()
    assert [(t["map_index"], t["state"]) for t in marked["task_instances"]] == [(2, "failed")]
    cleared = operator.post(
        "/api/v1/dags/mapped_api/clearTaskInstances", json={"dag_run_id": run_id, "task_ids": [["double", 0]]}
    ).json()
    assert [(t["task_id"], t["map_index"], t["state"]) for t in cleared["task_instances"]] == [("double", 0, "none")]
    states = [(t["map_index"], t["state"]) for t in viewer.get(f"{base}/double/listMapped").json()["task_instances"]]
    assert states == [(0, "none"), (1, "success"), (2, "failed")]
    bad = operator.post(
        "/api/v1/dags/mapped_api/clearTaskInstances", json={"dag_run_id": run_id, "task_ids": [["double", -1]]}
    )
    assert bad.status_code == 422
