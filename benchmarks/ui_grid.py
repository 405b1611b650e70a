"""Grid view benchmark: a DAG of 1,000 tasks with 100 finished runs (100,000 task instances) in a fresh SQLite DB.

    python benchmarks/ui_grid.py [--tasks 1000] [--runs 100] [--repeat 5]

Prints:

* the grid data endpoint (``GET /ui/data/dags/{dag_id}/grid?num_runs=<runs>``,
  through a real uvicorn server on loopback): median and best wall time over
  ``--repeat`` requests, and the JSON payload size (bytes, and gzip-compressed for
  reference);
* the grid page in Debian's Chromium (Playwright, headless): time from the
  start of navigation until the canvas has first been drawn (``performance.now()``
  at the first draw), and the time of one full repaint after scrolling.

Rows are inserted directly (bulk Core inserts): the DAG version through the DAG
processor's ``store_result``, then runs and task instances already finished.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from sqlalchemy import insert

from headrace.api.server import start_in_thread
from headrace.api.users import create_token, create_user
from headrace.authoring.dag import DAG
from headrace.config import load_settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagRun, DagVersion, TaskInstance
from headrace.operators import EmptyOperator

DAG_ID = "big_grid"
PASSWORD = "benchmark-password"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
START = datetime(2025, 1, 1, tzinfo=UTC)


def build_dag(n_tasks: int) -> DAG:
    """Layers of 50 tasks; each task depends on two tasks of the layer before."""
    width = 50
    with DAG(DAG_ID, start_date=START, schedule="@daily", catchup=False) as dag:
        tasks = [EmptyOperator(task_id=f"layer{i // width:02d}_task{i % width:02d}") for i in range(n_tasks)]
        for i, task in enumerate(tasks):
            if i >= width:
                layer_start = (i // width - 1) * width
                task.set_upstream([tasks[layer_start + (i % width)], tasks[layer_start + (i + 1) % width]])
    return dag


def populate(db: Database, settings_home: Path, n_tasks: int, n_runs: int) -> None:
    dag = build_dag(n_tasks)
    settings = load_settings({"HEADRACE_HOME": str(settings_home)})
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult(str(settings_home / "dags" / "big.py"), dags=[serialize_dag(dag)]), 0.0, 0, START)
    with db.session() as session:
        version_id = session.query(DagVersion.id).filter(DagVersion.dag_id == DAG_ID).scalar()
    task_ids = sorted(dag.task_dict)
    with db.engine.begin() as conn:
        runs = []
        for r in range(n_runs):
            day = START + timedelta(days=r)
            runs.append({"dag_id": DAG_ID, "run_id": f"scheduled__{day.isoformat()}", "run_type": "scheduled",
                         "logical_date": day, "data_interval_start": day, "data_interval_end": day + timedelta(days=1),
                         "state": "failed" if r % 17 == 5 else "success", "conf": {}, "dag_version_id": version_id,
                         "queued_at": day, "start_date": day + timedelta(days=1),
                         "end_date": day + timedelta(days=1, minutes=10 + r % 7), "callbacks_done": True})
        conn.execute(insert(DagRun), runs)
        run_pks = conn.execute(DagRun.__table__.select().with_only_columns(DagRun.id, DagRun.run_id)
                               .order_by(DagRun.id)).all()
        for pk, run_id in run_pks:
            rows = []
            for j, task_id in enumerate(task_ids):
                state = "success"
                if pk % 17 == 6 and j % 97 == 3:
                    state = "failed"
                elif j % 41 == 7:
                    state = "skipped"
                rows.append({"dag_run_id": pk, "dag_id": DAG_ID, "run_id": run_id, "task_id": task_id, "state": state,
                             "try_number": 1, "max_tries": 0, "priority_weight": 1, "pool": "default_pool",
                             "pool_slots": 1, "queue": "default"})
            conn.execute(insert(TaskInstance), rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="headrace-bench-ui-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        settings = load_settings({"HEADRACE_HOME": str(home)})
        db = Database(f"sqlite:///{home / 'headrace.db'}")
        migrate(db)
        t0 = time.perf_counter()
        populate(db, home, args.tasks, args.runs)
        print(f"setup: {args.tasks} tasks x {args.runs} runs = {args.tasks * args.runs} task instances "
              f"inserted in {time.perf_counter() - t0:.1f} s (SQLite)")
        with db.session() as session:
            user = create_user(session, "bench", PASSWORD, "viewer", now=datetime.now(UTC))
            token, _ = create_token(session, user, "bench", now=datetime.now(UTC))
        server = start_in_thread(settings, db, host="127.0.0.1", port=0)
        try:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                              timeout=60) as client:
                url = f"/ui/data/dags/{DAG_ID}/grid?num_runs={args.runs}"
                client.get(url).raise_for_status()  # warm-up
                times, body = [], b""
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    resp = client.get(url)
                    times.append(time.perf_counter() - started)
                    resp.raise_for_status()
                    body = resp.content
            print(f"grid data endpoint: median {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms "
                  f"over {args.repeat} requests (Bearer API token); payload {len(body):,} bytes "
                  f"({len(gzip.compress(body)):,} gzipped)")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=server.url)
                page.goto("/login")
                page.fill("input[name=username]", "bench")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(server.url + "/")
                drawn = []
                for _ in range(3):
                    page.goto(f"/dags/{DAG_ID}/grid?num_runs={args.runs}")
                    page.wait_for_function("() => window.hrGridFirstDrawnAt !== undefined", timeout=60_000)
                    drawn.append(page.evaluate("() => window.hrGridFirstDrawnAt"))
                repaint = page.evaluate("""() => {
                    const s = document.getElementById("grid-scroll"); s.scrollTop = 5000; s.scrollLeft = 400;
                    const t = performance.now(); for (let k = 0; k < 20; k++) window.hrGrid.draw();
                    return (performance.now() - t) / 20; }""")
                cells = page.evaluate("() => window.hrGrid.data.states.reduce((n, s) => n + s.length, 0)")
                dom = page.evaluate("() => document.getElementsByTagName('*').length")
                browser.close()
            print(f"grid page in Chromium: first draw {statistics.median(drawn):.0f} ms after navigation start "
                  f"(median of 3; {cells:,} cells, {dom} DOM elements on the page); one repaint after scrolling "
                  f"{repaint:.1f} ms")
        finally:
            server.stop()
            db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
