"""UI pages benchmark: a DAG of 1,000 tasks with 100 finished runs (100,000 task instances, ~102,000 tries).

    python benchmarks/ui_pages.py [--tasks 1000] [--runs 100] [--repeat 5] [--loads 3] [--pages grid,graph,...]

The DAG has layers of 50 tasks; each task depends on 2 or 3 tasks of the layer
before (the 20-layer DAG has ~2,450 edges). Every task instance has a finished
try with start/end times, peak RSS and CPU seconds; about 2 % were retried (two
tries); one task instance has a 2,000-line log. All rows go into a fresh SQLite
DB through bulk Core inserts (the DAG version through the DAG processor's
``store_result``).

For each page (DAG list, grid, graph, Gantt of one run, task instance page,
resources page) it prints:

* the page's data endpoint(s), through a real uvicorn server on loopback with a
  Bearer API token: median and best wall time over ``--repeat`` requests, and
  the JSON payload size (bytes, and gzip-compressed as sent to a browser);
* the page in Debian's Chromium (Playwright, headless, logged in through the
  login form): milliseconds from navigation start until the page has drawn
  its content (a concrete element per page: the SVG nodes coloured by state,
  the Gantt bars, the charts' canvases, the log text, …), as
  ``performance.now()`` in the page at the first animation frame where that
  element is present. The first of ``--loads`` loads starts with the
  browser's localStorage emptied (the graph caches its layout there), then
  the median of the others; what was drawn follows.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import insert

from headrace.api.users import create_token, create_user
from headrace.authoring.dag import DAG
from headrace.config import load_settings
from headrace.dagfiles.processor import DagProcessor, ParseResult
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.db.migrate import migrate
from headrace.db.models import DagRun, DagVersion, TaskInstance, TaskTry
from headrace.logs.files import try_log_path
from headrace.operators import EmptyOperator
from headrace.webapp import start_in_thread

DAG_ID = "big_grid"
PASSWORD = "benchmark-password"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START = datetime(2025, 1, 1, tzinfo=UTC)
WIDTH = 50
"""Tasks per layer."""
MIB = 1 << 20


def task_id_of(i: int) -> str:
    return f"layer{i // WIDTH:02d}_task{i % WIDTH:02d}"


def build_dag(n_tasks: int) -> DAG:
    """Layers of ``WIDTH`` tasks; each task depends on 2 or 3 tasks of the layer before; every 10th has a memory_limit."""
    with DAG(DAG_ID, start_date=START, schedule="@daily", catchup=False) as dag:
        tasks = [
            EmptyOperator(task_id=task_id_of(i), memory_limit=(200 * MIB if i % 10 == 0 else None))
            for i in range(n_tasks)
        ]
        for i, task in enumerate(tasks):
            if i >= WIDTH:
                prev = (i // WIDTH - 1) * WIDTH
                k = i % WIDTH
                ups = {prev + k, prev + (k + 7) % WIDTH}
                if i % 2:
                    ups.add(prev + (k * 3 + 11) % WIDTH)
                task.set_upstream([tasks[u] for u in sorted(ups)])
    return dag


def populate(db: Database, home: Path, n_tasks: int, n_runs: int) -> dict[str, Any]:
    """Insert the DAG, runs, task instances and tries; returns ``{"run_id", "task_id", "edges"}`` of the pages to open."""
    dag = build_dag(n_tasks)
    settings = load_settings({"HEADRACE_HOME": str(home)})
    with db.session() as session:
        DagProcessor(settings, db).store_result(
            session, ParseResult(str(home / "dags" / "big.py"), dags=[serialize_dag(dag)]), 0.0, 0, START
        )
    with db.session() as session:
        version_id = session.query(DagVersion.id).filter(DagVersion.dag_id == DAG_ID).scalar()
    task_ids = [task_id_of(i) for i in range(n_tasks)]
    with db.engine.begin() as conn:
        runs = []
        for r in range(n_runs):
            day = START + timedelta(days=r)
            runs.append(
                {
                    "dag_id": DAG_ID,
                    "run_id": f"scheduled__{day.isoformat()}",
                    "run_type": "scheduled",
                    "logical_date": day,
                    "data_interval_start": day,
                    "data_interval_end": day + timedelta(days=1),
                    "state": "failed" if r % 17 == 5 else "success",
                    "conf": {},
                    "dag_version_id": version_id,
                    "queued_at": day + timedelta(days=1),
                    "start_date": day + timedelta(days=1),
                    "end_date": day + timedelta(days=1, minutes=30 + r % 7),
                    "callbacks_done": True,
                }
            )
        conn.execute(insert(DagRun), runs)
        run_pks = conn.execute(
            DagRun.__table__.select().with_only_columns(DagRun.id, DagRun.run_id, DagRun.start_date).order_by(DagRun.id)
        ).all()
        for pk, run_id, run_start in run_pks:
            run_start = run_start.replace(tzinfo=UTC) if run_start.tzinfo is None else run_start
            tis = []
            for j, task_id in enumerate(task_ids):
                state = "success"
                if pk % 17 == 6 and j % 97 == 3:
                    state = "failed"
                elif j % 41 == 7:
                    state = "skipped"
                retried = (j * 7 + pk) % 50 == 0
                tis.append(
                    {
                        "dag_run_id": pk,
                        "dag_id": DAG_ID,
                        "run_id": run_id,
                        "task_id": task_id,
                        "state": state,
                        "try_number": 2 if retried else 1,
                        "max_tries": 1,
                        "priority_weight": 1,
                        "pool": "default_pool",
                        "pool_slots": 1,
                        "queue": "default",
                        "queued_at": run_start + timedelta(seconds=30 * (j // WIDTH)),
                    }
                )
            conn.execute(insert(TaskInstance), tis)
            ti_pks = dict(
                conn.execute(
                    TaskInstance.__table__.select()
                    .with_only_columns(TaskInstance.task_id, TaskInstance.id)
                    .where(TaskInstance.dag_run_id == pk)
                ).all()
            )
            tries = []
            for j, ti in enumerate(tis):
                begin = ti["queued_at"] + timedelta(seconds=(j * 13) % 9)
                for n in range(1, ti["try_number"] + 1):
                    seconds = 5 + (j * 31 + pk * 7 + n) % 35
                    last = n == ti["try_number"]
                    killed = not last and j % 3 == 0
                    tries.append(
                        {
                            "task_instance_id": ti_pks[ti["task_id"]],
                            "dag_id": DAG_ID,
                            "run_id": run_id,
                            "task_id": ti["task_id"],
                            "try_number": n,
                            "state": ti["state"] if last else "up_for_retry",
                            "hostname": "bench-host",
                            "supervisor_pid": 10_000 + j,
                            "supervisor_start_time": begin.timestamp(),
                            "pid": 20_000 + j,
                            "process_start_time": begin.timestamp() + 0.05,
                            "start_date": begin,
                            "end_date": begin + timedelta(seconds=seconds),
                            "heartbeat_at": begin + timedelta(seconds=seconds),
                            "exit_code": 0 if last and ti["state"] != "failed" else 1,
                            "signal": None,
                            "peak_rss_bytes": (40 + (j * 37) % 150 + (pk % 9)) * MIB + (250 * MIB if killed else 0),
                            "cpu_seconds": seconds * 0.8,
                            "end_reason": (
                                "memory_limit_exceeded"
                                if killed
                                else "success"
                                if ti["state"] in ("success", "skipped")
                                else "failed"
                            ),
                            "error": "MemoryError: over memory_limit" if killed else None,
                            "log_path": str(try_log_path(settings.base_log_folder, DAG_ID, run_id, ti["task_id"], n)),
                        }
                    )
                    begin += timedelta(seconds=seconds + 20)
            conn.execute(insert(TaskTry), tries)
    run_id = run_pks[len(run_pks) // 2][1]
    task_id = task_ids[len(task_ids) // 2]
    log = try_log_path(settings.base_log_folder, DAG_ID, run_id, task_id, 1)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "".join(f"[2025-01-01T00:00:{i % 60:02d}+0000] INFO - line {i} of the task's output\n" for i in range(2000))
    )
    edges = sum(len(t.upstream_task_ids) for t in dag.tasks)
    return {"run_id": run_id, "task_id": task_id, "edges": edges}


@dataclass
class PageSpec:
    """One page: its URL, the data endpoints it reads, and a JS predicate true once it has drawn."""

    name: str
    url: str
    endpoints: list[str]
    drawn: str
    """JS expression, true when the page has drawn its content."""
    detail: str
    """JS expression giving a short description of what was drawn."""


def pages(args: argparse.Namespace, run_id: str, task_id: str) -> list[PageSpec]:
    d, r, t = quote(DAG_ID, safe=""), quote(run_id, safe=""), quote(task_id, safe="")
    ti = f"/api/v1/dags/{d}/dagRuns/{r}/taskInstances/{t}"
    return [
        PageSpec(
            "DAG list",
            "/",
            [
                "/api/v1/dags?limit=100&only_active=true",
                "/ui/data/recent_runs?limit=10",
                "/api/v1/importErrors?limit=100",
            ],
            "document.querySelector('#dags tbody tr[data-dag-id] td.recent a')",
            "`${document.querySelectorAll('#dags tbody tr[data-dag-id]').length} DAG row(s)`",
        ),
        PageSpec(
            "grid",
            f"/dags/{d}/grid?num_runs={args.runs}",
            [f"/ui/data/dags/{d}/grid?num_runs={args.runs}"],
            "window.hrGridFirstDrawnAt !== undefined",
            "`${window.hrGrid.data.states.reduce((n, s) => n + s.length, 0)} cells on a canvas`",
        ),
        PageSpec(
            "graph",
            f"/dags/{d}/graph",
            [f"/ui/data/dags/{d}/graph"],
            "document.querySelectorAll('#graph-svg g.node[data-state]').length >= "
            f"{args.tasks} && document.querySelectorAll('#graph-svg path.edge').length > 0",
            "`${document.querySelectorAll('#graph-svg g.node').length} nodes, "
            "${document.querySelectorAll('#graph-svg path.edge').length} edges (SVG)`",
        ),
        PageSpec(
            "gantt",
            f"/dags/{d}/runs/{r}/gantt",
            [f"/ui/data/dags/{d}/runs/{r}/gantt"],
            "document.querySelector('#gantt svg .gantt-try')",
            "`${document.getElementById('gantt-summary').textContent.split(';')[0]}; "
            "${document.querySelectorAll('#gantt .gantt-try').length} bars in the DOM, "
            "${document.getElementsByTagName('*').length} DOM elements`",
        ),
        PageSpec(
            "task instance",
            f"/dags/{d}/runs/{r}/tasks/{t}",
            [ti, f"{ti}/tries", f"{ti}/logs/1?offset=0"],
            "document.querySelector('#tries tbody tr[data-try]') && "
            "document.getElementById('log').dataset.finished === 'true'",
            "`${document.querySelectorAll('#tries tbody tr[data-try]').length} tries, "
            "${document.getElementById('log').textContent.split('\\n').length} log lines`",
        ),
        PageSpec(
            "resources",
            f"/dags/{d}/resources",
            [f"/ui/data/dags/{d}/resources?runs=50"],
            "document.querySelectorAll('#res-charts canvas').length > 0 && "
            "[...document.querySelectorAll('#res-charts canvas')].every(c => c.width > 0) && "
            "document.querySelector('#resources-table tbody tr[data-task-id]')",
            "`${document.querySelectorAll('#res-charts canvas').length} charts, "
            "${document.querySelectorAll('#resources-table tbody tr').length} table rows`",
        ),
    ]


def time_endpoints(client: httpx.Client, spec: PageSpec, repeat: int, names: dict[str, str]) -> list[str]:
    lines = []
    for url in spec.endpoints:
        client.get(url).raise_for_status()  # warm-up
        times, body = [], b""
        for _ in range(repeat):
            started = time.perf_counter()
            resp = client.get(url)
            times.append(time.perf_counter() - started)
            resp.raise_for_status()
            body = resp.content
        label = url.split("?")[0]
        for value, name in names.items():
            label = label.replace(value, name)
        lines.append(
            f"  data GET {label}: median {statistics.median(times) * 1000:.0f} ms, "
            f"best {min(times) * 1000:.0f} ms; {len(body):,} bytes ({len(gzip.compress(body)):,} gzipped)"
        )
    return lines


def time_page(page: Page, spec: PageSpec, loads: int) -> str:
    """Load the page ``loads`` times; the first with the browser's localStorage emptied (nothing cached).

    Also says how many Web Workers the loads started and any console error or uncaught exception.
    """
    page.evaluate("() => localStorage.clear()")
    workers: list[str] = []
    errors: list[str] = []
    handlers: dict[str, Callable[[Any], None]] = {
        "worker": lambda w: workers.append(w.url),
        "console": lambda m: errors.append(m.text) if m.type == "error" else None,
        "pageerror": lambda e: errors.append(str(e)),
    }
    for event, handler in handlers.items():
        page.on(event, handler)  # type: ignore[call-overload]
    drawn: list[float] = []
    detail = ""
    for _ in range(loads):
        page.goto(spec.url, wait_until="commit")
        handle = page.wait_for_function(
            f"() => ({spec.drawn}) ? performance.now() : false", polling="raf", timeout=300_000
        )
        drawn.append(float(handle.json_value()))
        detail = page.evaluate(f"() => {spec.detail}")
    for event, handler in handlers.items():
        page.remove_listener(event, handler)
    again = f"; again: median {statistics.median(drawn[1:]):.0f} ms of {loads - 1}" if loads > 1 else ""
    extra = f"; {len(workers)} Web Worker(s) started" if workers else ""
    extra += f"; console errors: {errors[:3]}" if errors else ""
    return (
        f"  Chromium: drawn {drawn[0]:.0f} ms after navigation start (first load, empty localStorage{again}; "
        f"{', '.join(f'{x:.0f}' for x in drawn)}) — {detail}{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="requests per data endpoint")
    parser.add_argument("--loads", type=int, default=3, help="page loads per page in Chromium")
    parser.add_argument("--pages", default="", help="comma-separated page names to measure (default: all)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="headrace-bench-ui-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        settings = load_settings({"HEADRACE_HOME": str(home)})
        db = Database(f"sqlite:///{home / 'headrace.db'}")
        migrate(db)
        t0 = time.perf_counter()
        made = populate(db, home, args.tasks, args.runs)
        print(
            f"setup: {args.tasks} tasks ({made['edges']} edges) x {args.runs} runs = {args.tasks * args.runs} task "
            f"instances with their tries inserted in {time.perf_counter() - t0:.1f} s (SQLite)"
        )
        with db.session() as session:
            user = create_user(session, "bench", PASSWORD, "viewer", now=datetime.now(UTC))
            token, _ = create_token(session, user, "bench", now=datetime.now(UTC))
        specs = pages(args, made["run_id"], made["task_id"])
        wanted = {p.strip() for p in args.pages.split(",") if p.strip()}
        specs = [s for s in specs if not wanted or s.name in wanted]
        server = start_in_thread(settings, db, host="127.0.0.1", port=0)
        try:
            with httpx.Client(
                base_url=server.url,
                timeout=120,
                headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
            ) as client:
                names = {quote(made["run_id"], safe=""): "{run_id}", quote(made["task_id"], safe=""): "{task_id}"}
                data_lines = {s.name: time_endpoints(client, s, args.repeat, names) for s in specs}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=server.url)
                page.goto("/login")
                page.fill("input[name=username]", "bench")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(server.url + "/")
                for spec in specs:
                    print(f"{spec.name}:")
                    for line in data_lines[spec.name]:
                        print(line)
                    print(time_page(page, spec, args.loads), flush=True)
                browser.close()
        finally:
            server.stop()
            db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
