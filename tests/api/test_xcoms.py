"""``…/taskInstances/{task_id}/xcomEntries``: values pushed by a real run."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import ClientAs, FinishedRun


def test_xcoms_of_a_real_run(client_as: ClientAs, anon: TestClient, finished_run: FinishedRun) -> None:
    viewer = client_as("viewer")
    base = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances"
    body = viewer.get(f"{base}/extract/xcomEntries").json()
    assert body["total_entries"] == 1
    (entry,) = body["xcom_entries"]
    assert entry["key"] == "return_value" and entry["value"] == {"rows": 3, "when": "today"}
    assert entry["created_at"]
    assert viewer.get(f"{base}/extract/xcomEntries/return_value").json() == entry
    assert viewer.get(f"{base}/explode/xcomEntries").json() == {"xcom_entries": [], "total_entries": 0}
    assert viewer.get(f"{base}/extract/xcomEntries", params={"offset": 1}).json()["xcom_entries"] == []

    missing = viewer.get(f"{base}/extract/xcomEntries/nope")
    assert missing.status_code == 404 and "no XCom 'nope'" in missing.json()["detail"]
    assert viewer.get(f"{base}/nope/xcomEntries").json()["error"] == "TaskNotFound"
    assert anon.get(f"{base}/extract/xcomEntries").status_code == 401
