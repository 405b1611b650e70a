"""``…/taskInstances/{task_id}/tries``: the process identity and resources of every try."""

from __future__ import annotations

import socket

from fastapi.testclient import TestClient

from tests.api.conftest import ClientAs, FinishedRun


def test_tries_of_a_real_run(client_as: ClientAs, anon: TestClient, finished_run: FinishedRun) -> None:
    viewer = client_as("viewer")
    base = f"/api/v1/dags/demo/dagRuns/{finished_run.run_id}/taskInstances"
    body = viewer.get(f"{base}/extract/tries").json()
    assert body["total_entries"] == 1
    (one,) = body["tries"]
    assert one["try_number"] == 1 and one["state"] == "success" and one["end_reason"] == "success"
    assert one["hostname"] == socket.gethostname()
    assert one["pid"] > 0 and one["supervisor_pid"] > 0 and one["pid"] != one["supervisor_pid"]
    assert one["process_start_time"] > 0 and one["supervisor_start_time"] > 0
    assert one["exit_code"] == 0 and one["signal"] is None and one["error"] is None
    assert one["peak_rss_bytes"] > 1_000_000 and one["cpu_seconds"] >= 0
    # The task started nothing that outlived it; CI runs where tries get their own cgroup.
    assert (one["containment"], one["processes_left"], one["processes_killed"]) == ("cgroup", 0, 0)
    assert one["start_date"] <= one["end_date"] and one["duration"] >= 0 and one["heartbeat_at"]
    assert viewer.get(f"{base}/extract/tries/1").json() == one

    failed = viewer.get(f"{base}/explode/tries/1").json()
    assert failed["state"] == "failed" and failed["end_reason"] == "failed" and "boom" in failed["error"]
    assert viewer.get(f"{base}/after/tries").json() == {"tries": [], "total_entries": 0}  # never ran

    missing = viewer.get(f"{base}/extract/tries/2")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert viewer.get(f"{base}/extract/tries/0").status_code == 422
    assert viewer.get(f"{base}/extract/tries/99999999999999").status_code == 422
    assert viewer.get(f"{base}/nope/tries").json()["error"] == "TaskNotFound"
    assert viewer.get(f"{base}/extract/tries", params={"limit": 0}).status_code == 422
    assert anon.get(f"{base}/extract/tries").status_code == 401
    assert anon.get(f"{base}/extract/tries/1").status_code == 401
