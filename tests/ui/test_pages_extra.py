"""Gantt, resources and pools pages and the JSON behind them (``headrace.ui.gantt``, ``resources``, ``pools``).

Rows are real: a DagModel, its serialized DagVersion, DAG runs, task instances
and their ``task_try`` rows, on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headrace.api.users import create_user
from headrace.db.engine import Database
from headrace.db.models import DagModel, DagRun, DagVersion, TaskInstance, TaskTry
from tests.api.conftest import PASSWORD, ClientAs, anon, api, app, client_as  # noqa: F401 — fixtures

MIB = 1024 * 1024
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _task(task_id: str, upstream: list[str], downstream: list[str], memory_limit: int | None) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "upstream_task_ids": upstream,
        "downstream_task_ids": downstream,
        "memory_limit": memory_limit,
        "operator": "@task",
    }


def add_dag(db: Database, dag_id: str = "mem", *, hog_limit: int | None = 256 * MIB, version: str = "v1") -> int:
    """A DAG ``hog >> summary`` and ``modest >> summary``; hog and modest limited; return the version pk."""
    serialized = {
        "dag_id": dag_id,
        "tasks": {
            "hog": _task("hog", [], ["summary"], hog_limit),
            "modest": _task("modest", [], ["summary"], 256 * MIB),
            "summary": _task("summary", ["hog", "modest"], [], None),
        },
    }
    with db.session() as s:
        dag = s.get(DagModel, dag_id)
        if dag is None:
            s.add(
                DagModel(
                    dag_id=dag_id,
                    fileloc=f"/dags/{dag_id}.py",
                    is_paused=False,
                    is_active=True,
                    tags=[],
                    max_active_runs=16,
                    max_active_tasks=16,
                    version_hash=version,
                )
            )
        else:
            dag.version_hash = version
        v = DagVersion(dag_id=dag_id, version_hash=version, serialized=serialized, created_at=T0)
        s.add(v)
        s.flush()
        return v.id


def add_run(
    db: Database, version_pk: int, run_id: str, at: datetime, *, dag_id: str = "mem", state: str = "success"
) -> int:
    with db.session() as s:
        run = DagRun(
            dag_id=dag_id,
            run_id=run_id,
            run_type="manual",
            logical_date=at,
            data_interval_start=at,
            data_interval_end=at,
            state=state,
            conf={},
            dag_version_id=version_pk,
            queued_at=at,
            start_date=at,
            end_date=None if state == "running" else at + timedelta(minutes=5),
        )
        s.add(run)
        s.flush()
        return run.id


def add_ti(
    db: Database,
    run_pk: int,
    task_id: str,
    state: str,
    tries: list[dict[str, Any]],
    *,
    queued_at: datetime | None = None,
    dag_id: str = "mem",
) -> None:
    """A task instance with one ``task_try`` row per entry of ``tries`` (start/end offsets in seconds)."""
    with db.session() as s:
        run = s.get(DagRun, run_pk)
        assert run is not None
        ti = TaskInstance(
            dag_run_id=run_pk,
            dag_id=dag_id,
            run_id=run.run_id,
            task_id=task_id,
            state=state,
            try_number=len(tries) if tries or queued_at is None else 1,
            max_tries=2,
            queued_at=queued_at,
        )
        s.add(ti)
        s.flush()
        base = run.start_date or T0
        for n, t in enumerate(tries, start=1):
            s.add(
                TaskTry(
                    task_instance_id=ti.id,
                    dag_id=dag_id,
                    run_id=run.run_id,
                    task_id=task_id,
                    try_number=n,
                    state=t.get("state", "success"),
                    hostname="host-a",
                    supervisor_pid=100 + n,
                    supervisor_start_time=1.0,
                    pid=200 + n,
                    process_start_time=2.0,
                    start_date=base + timedelta(seconds=t["start"]),
                    end_date=None if t.get("end") is None else base + timedelta(seconds=t["end"]),
                    heartbeat_at=base + timedelta(seconds=t["start"]),
                    exit_code=t.get("exit_code"),
                    peak_rss_bytes=t.get("peak"),
                    cpu_seconds=t.get("cpu"),
                    end_reason=t.get("end_reason"),
                    log_path=f"/logs/{task_id}/{n}.log",
                )
            )


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


@pytest.mark.parametrize("path", ["/dags/mem/runs/r1/gantt", "/dags/mem/resources", "/pools"])
def test_pages_redirect_to_login_without_a_session(db: Database, anon: TestClient, path: str) -> None:
    v = add_dag(db)
    add_run(db, v, "r1", T0)
    r = anon.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def _session_client(app: Any, db: Database, role: str) -> TestClient:
    """A client logged in through the session cookie (as a browser is), with role ``role``."""
    with db.session() as s:
        create_user(s, f"web-{role}", PASSWORD, role, now=datetime.now(UTC))
    client = TestClient(app)
    r = client.post("/api/v1/auth/login", json={"username": f"web-{role}", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def test_pages_render_for_a_logged_in_viewer(db: Database, app: Any) -> None:
    v = add_dag(db)
    add_run(db, v, "manual__1", T0)
    with _session_client(app, db, "viewer") as web:
        gantt = web.get("/dags/mem/runs/manual__1/gantt")
        assert gantt.status_code == 200
        assert 'id="gantt" data-dag-id="mem" data-run-id="manual__1"' in gantt.text
        assert '<script src="/static/gantt.js">' in gantt.text
        assert 'href="/dags/mem/runs/manual__1/gantt" class="active">Gantt</a>' in gantt.text  # the DAG page tabs

        res = web.get("/dags/mem/resources", params={"runs": 20})
        assert res.status_code == 200
        assert 'data-dag-id="mem" data-runs="20"' in res.text
        assert '<script src="/static/vendor/chart.umd.min.js">' in res.text
        assert 'href="/dags/mem/resources" class="active">Resources</a>' in res.text
        assert web.get("/dags/mem/resources", params={"runs": 0}).status_code == 422

        pools = web.get("/pools")
        assert pools.status_code == 200 and '<script src="/static/pools.js">' in pools.text
        # a viewer's create button is disabled (the API refuses the change anyway)
        assert 'class="primary" disabled title="needs the operator role"' in pools.text
        assert 'data-can-operate="false"' in pools.text


def test_pool_form_is_enabled_for_an_operator(db: Database, app: Any) -> None:
    with _session_client(app, db, "operator") as web:
        text = web.get("/pools").text
        assert 'data-can-operate="true"' in text
        assert "disabled" not in text.split('id="pool-create"', 1)[1].split("</form>", 1)[0]


def test_unknown_dag_or_run_renders_a_404_page(db: Database, app: Any) -> None:
    v = add_dag(db)
    add_run(db, v, "r1", T0)
    with _session_client(app, db, "viewer") as web:
        r = web.get("/dags/mem/runs/nope/gantt")
        assert r.status_code == 404 and "DAG run &#39;nope&#39; of DAG &#39;mem&#39; not found" in r.text
        r = web.get("/dags/nope/resources")
        assert r.status_code == 404 and "DAG &#39;nope&#39; not found" in r.text
        assert "gantt.js" not in web.get("/dags/nope/runs/r1/gantt").text


@pytest.mark.parametrize(
    "path",
    [
        "/static/gantt.js",
        "/static/pools.js",
        "/static/resources.js",
        "/static/extra.css",
        "/static/vendor/chart.umd.min.js",
    ],
)
def test_page_assets_are_served_locally(anon: TestClient, path: str) -> None:
    r = anon.get(path)
    assert r.status_code == 200 and len(r.content) > 500
