"""The resources page's JSON (``headrace.ui.resources``): peak memory and duration per task across runs, with limits.

Rows are real (``tests/ui/rows.py``), on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from headrace.db.engine import Database
from tests.api.conftest import ClientAs, anon, api, app, client_as  # noqa: F401 — fixtures
from tests.ui.rows import MIB, T0, add_dag, add_run, add_ti


def _three_runs(db: Database) -> None:
    v = add_dag(db)
    for i, (hog_peak, modest_peak) in enumerate([(180, 60), (400, 70), (200, 65)]):
        run = add_run(db, v, f"r{i}", T0 + timedelta(hours=i))
        hog_tries = [{"start": 0, "end": 2 + i, "state": "success", "peak": hog_peak * MIB, "cpu": 0.5}]
        if i == 1:  # over the limit, then retried
            hog_tries = [
                {
                    "start": 0,
                    "end": 1,
                    "state": "up_for_retry",
                    "end_reason": "memory_limit_exceeded",
                    "peak": hog_peak * MIB,
                    "cpu": 0.2,
                },
                {"start": 5, "end": 9, "state": "success", "end_reason": "success", "peak": 190 * MIB, "cpu": 0.7},
            ]
        add_ti(db, run, "hog", "success", hog_tries)
        add_ti(db, run, "modest", "success", [{"start": 0, "end": 1, "peak": modest_peak * MIB, "cpu": 0.1}])
        add_ti(db, run, "summary", "success", [{"start": 10, "end": 10.25, "peak": None}])


def test_resources_puts_the_memory_hog_first_with_its_limit(db: Database, client_as: ClientAs) -> None:
    _three_runs(db)
    r = client_as("viewer").get("/ui/data/dags/mem/resources")
    assert r.status_code == 200, r.text
    data = r.json()
    assert [x["run_id"] for x in data["runs"]] == ["r0", "r1", "r2"]  # oldest first
    tasks = data["tasks"]
    assert [t["task_id"] for t in tasks] == ["hog", "modest", "summary"]  # never-measured last
    hog = tasks[0]
    assert hog["max_peak_rss_bytes"] == 400 * MIB
    assert hog["memory_limit_bytes"] == 256 * MIB
    assert hog["pct_of_limit"] == 156.2  # 400 / 256
    assert hog["tries"] == 4 and hog["runs"] == 3
    assert hog["memory_limit_exceeded"] == 1
    assert hog["max_duration"] == 4.0  # the retry, 5 s → 9 s
    assert hog["max_cpu_seconds"] == 0.7
    assert tasks[1]["max_peak_rss_bytes"] == 70 * MIB and tasks[1]["pct_of_limit"] == 27.3
    assert tasks[2]["max_peak_rss_bytes"] is None and tasks[2]["memory_limit_bytes"] is None
    assert tasks[2]["mean_duration"] == 0.25

    series = data["series"]["hog"]
    assert [(p["run_id"], p["try_number"]) for p in series] == [("r0", 1), ("r1", 1), ("r1", 2), ("r2", 1)]
    assert [p["run_index"] for p in series] == [0, 1, 1, 2]
    assert [p["peak_rss_bytes"] // MIB for p in series] == [180, 400, 190, 200]
    assert all(p["memory_limit_bytes"] == 256 * MIB for p in series)
    assert series[1]["end_reason"] == "memory_limit_exceeded"


def test_resources_last_n_runs_series_choice_and_per_version_limits(db: Database, api: TestClient) -> None:
    _three_runs(db)
    # a new version raises hog's limit; a fourth run uses it
    v2 = add_dag(db, hog_limit=512 * MIB, version="v2")
    run = add_run(db, v2, "r3", T0 + timedelta(hours=3))
    add_ti(db, run, "hog", "success", [{"start": 0, "end": 3, "peak": 300 * MIB}])

    data = api.get("/ui/data/dags/mem/resources", params={"runs": 2}).json()
    assert [x["run_id"] for x in data["runs"]] == ["r2", "r3"]
    hog = data["tasks"][0]
    assert hog["task_id"] == "hog" and hog["max_peak_rss_bytes"] == 300 * MIB
    assert hog["memory_limit_bytes"] == 512 * MIB and hog["pct_of_limit"] == 58.6
    assert [p["memory_limit_bytes"] // MIB for p in data["series"]["hog"]] == [256, 512]

    only = api.get("/ui/data/dags/mem/resources", params={"series": 1, "task_id": "summary"}).json()
    assert list(only["series"]) == ["hog", "summary"]
    none = api.get("/ui/data/dags/mem/resources", params={"series": 0}).json()
    assert none["series"] == {} and len(none["tasks"]) == 3

    assert api.get("/ui/data/dags/mem/resources", params={"runs": 0}).status_code == 422
    r = api.get("/ui/data/dags/nope/resources")
    assert r.status_code == 404 and r.json()["error"] == "DagNotFound"


def test_resources_of_a_dag_without_runs(db: Database, api: TestClient) -> None:
    add_dag(db)
    data = api.get("/ui/data/dags/mem/resources").json()
    assert data["runs"] == []
    assert {t["task_id"]: t["memory_limit_bytes"] for t in data["tasks"]} == {
        "hog": 256 * MIB,
        "modest": 256 * MIB,
        "summary": None,
    }
    assert all(t["tries"] == 0 and t["max_peak_rss_bytes"] is None for t in data["tasks"])
