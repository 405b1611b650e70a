"""The Gantt page's JSON (``headrace.ui.gantt``): one bar per try, retries and the queued wait, 404s and login.

Rows are real (``tests/ui/rows.py``), on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from headrace.db.engine import Database
from tests.api.conftest import ClientAs, anon, api, app, client_as  # noqa: F401 — fixtures
from tests.ui.rows import MIB, T0, add_dag, add_run, add_ti


def test_gantt_has_one_bar_per_try_with_retries_and_the_queued_wait(db: Database, client_as: ClientAs) -> None:
    v = add_dag(db)
    run = add_run(db, v, "manual__1", T0, state="running")
    add_ti(
        db,
        run,
        "hog",
        "success",
        [
            {"start": 1, "end": 4, "state": "up_for_retry", "end_reason": "memory_limit_exceeded", "peak": 300 * MIB},
            {"start": 10, "end": 12, "state": "success", "end_reason": "success", "peak": 100 * MIB, "cpu": 1.5},
        ],
    )
    add_ti(
        db,
        run,
        "modest",
        "running",
        [{"start": 2, "end": None, "state": "running"}],
        queued_at=T0 + timedelta(seconds=0.5),
    )
    add_ti(db, run, "summary", "queued", [], queued_at=T0 + timedelta(seconds=13))

    viewer = client_as("viewer")
    r = viewer.get("/ui/data/dags/mem/runs/manual__1/gantt")
    assert r.status_code == 200, r.text
    g = r.json()
    assert (g["dag_id"], g["run_id"], g["state"]) == ("mem", "manual__1", "running")
    # rows: by first start (hog at +1 s, modest at +2 s), then the never-started task
    assert g["tasks"] == ["hog", "modest", "summary"]

    hog = [b for b in g["tries"] if b["task_id"] == "hog"]
    assert [b["try_number"] for b in hog] == [1, 2]
    assert [b["state"] for b in hog] == ["up_for_retry", "success"]
    assert hog[0]["end_reason"] == "memory_limit_exceeded"
    assert hog[0]["duration"] == 3.0 and hog[1]["duration"] == 2.0
    assert hog[0]["start_date"] == (T0 + timedelta(seconds=1)).isoformat()
    assert hog[1]["end_date"] == (T0 + timedelta(seconds=12)).isoformat()
    assert hog[0]["peak_rss_bytes"] == 300 * MIB and hog[1]["cpu_seconds"] == 1.5
    assert (hog[0]["hostname"], hog[0]["pid"]) == ("host-a", 201)
    assert not hog[0]["running"]

    modest = [b for b in g["tries"] if b["task_id"] == "modest"]
    assert len(modest) == 1 and modest[0]["running"] and modest[0]["end_date"] is None
    assert modest[0]["duration"] > 0  # measured up to "now"

    waits = {w["task_id"]: w for w in g["waits"]}
    assert waits["modest"]["duration"] == 1.5  # queued at +0.5 s, started at +2 s
    assert waits["modest"]["start_date"] == (T0 + timedelta(seconds=2)).isoformat()
    assert waits["summary"]["start_date"] is None and waits["summary"]["state"] == "queued"
    assert "hog" not in waits  # no queued_at recorded


def test_gantt_unknown_dag_or_run_is_404(db: Database, api: TestClient) -> None:
    v = add_dag(db)
    add_run(db, v, "r1", T0)
    r = api.get("/ui/data/dags/nope/runs/r1/gantt")
    assert r.status_code == 404 and r.json()["error"] == "DagNotFound"
    r = api.get("/ui/data/dags/mem/runs/nope/gantt")
    assert r.status_code == 404 and r.json()["error"] == "DagRunNotFound"


def test_data_needs_a_login(db: Database, anon: TestClient) -> None:
    v = add_dag(db)
    add_run(db, v, "r1", T0)
    assert anon.get("/ui/data/dags/mem/runs/r1/gantt").status_code == 401
    assert anon.get("/ui/data/dags/mem/resources").status_code == 401
