"""Scheduler heartbeat, DB latency, scheduling delay, and DAG files parsed by the real DAG processor."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer

import psutil
import pytest
from prometheus_client.exposition import MetricsHandler
from sqlalchemy import select

from headrace.config import Settings, load_settings
from headrace.db.engine import Database
from headrace.db.models import DagFile, SchedulerJob
from headrace.doctor.findings import Area, Severity
from headrace.doctor.latency import measure_db_latency, measure_delay, scheduler_findings
from headrace.doctor.parsing import parse_findings
from headrace.observability.metrics import SchedulerMetrics
from headrace.scheduler.start import make_processor
from headrace.supervisor.identity import hostname
from tests.doctor.rows import NOW, Runs, add_scheduler_job, at


def test_scheduling_delay_percentiles(db: Database) -> None:
    runs = Runs(db, "delays")
    for delay in range(1, 21):  # queued 1..20 s before the try started
        start = at(30)
        runs.add_try("t", start, at(29), queued_at=start - timedelta(seconds=delay))
    runs.add_try("t", at(60 * 48), at(60 * 47), queued_at=at(60 * 48) - timedelta(seconds=999))  # outside 24 h
    delay = measure_delay(db, NOW, hours=24)
    assert round(delay[50], 3) == 10.0
    assert round(delay[95], 3) == 19.0
    assert round(delay[100], 3) == 20.0


@pytest.fixture
def scheduler_metrics() -> Iterator[tuple[SchedulerMetrics, int]]:
    """A scheduler's Prometheus registry served over real HTTP on a free loopback port: ``(metrics, port)``.

    Port 0 lets the OS choose, so no other test or xdist worker (e.g. a ``headrace scheduler`` on the default
    8794) can answer the doctor's scrape instead.
    """
    metrics = SchedulerMetrics()
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(metrics.registry))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield metrics, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_heartbeat_latency_and_delay_findings(
    db: Database, settings: Settings, scheduler_metrics: tuple[SchedulerMetrics, int]
) -> None:
    metrics, port = scheduler_metrics
    settings = settings.with_overrides({"metrics": {"scheduler_port": port}})
    for seconds in (0.25, 0.5, 0.75):
        metrics.on_loop(seconds, datetime.now(UTC))
    now = datetime.now(UTC)
    add_scheduler_job(db, now, heartbeat_age=60)
    me = psutil.Process()
    with db.session() as session:  # a job that never ended and whose process is gone
        session.add(
            SchedulerJob(
                hostname=hostname(),
                pid=me.pid,
                process_start_time=me.create_time() - 50,
                started_at=now,
                heartbeat_at=now,
            )
        )
    runs = Runs(db, "slowstart")
    runs.add_try(
        "t", now - timedelta(minutes=5), now - timedelta(minutes=4), queued_at=now - timedelta(minutes=5, seconds=30)
    )

    findings = scheduler_findings(settings, db, now, 1)
    assert all(f.area is Area.SCHEDULER for f in findings)
    stuck = next(f for f in findings if "last heartbeat" in f.title)
    assert stuck.severity is Severity.WARNING and stuck.figures["heartbeat_age_seconds"] == 60
    assert any("never ended but its process is gone" in f.title for f in findings)
    rt = next(f for f in findings if "round trip" in f.title)
    assert rt.figures["samples"] == 20 and 0 < rt.figures["select1_p50_ms"] <= rt.figures["select1_max_ms"]
    slow = next(f for f in findings if "scheduling delay" in f.title)
    assert slow.severity is Severity.WARNING and slow.figures["p95_seconds"] == 30.0
    loop = next(f for f in findings if "scheduler loop duration" in f.title)
    assert loop.severity is Severity.OK
    assert loop.figures == {"loop_duration_mean_seconds": 0.5, "loops": 3.0}


def test_no_scheduler_metrics_to_scrape_is_no_finding(db: Database, settings: Settings) -> None:
    settings = settings.with_overrides({"metrics": {"scheduler_port": 0}})  # 0: the scheduler serves none
    assert not any("loop duration" in f.title for f in scheduler_findings(settings, db, NOW, 1))


def test_db_latency_measures_both_queries(db: Database) -> None:
    lat = measure_db_latency(db, samples=5)
    assert lat["samples"] == 5
    for key in ("select1_p50_ms", "indexed_p50_ms"):
        assert lat[key] > 0


def test_no_scheduler_with_waiting_runs_is_a_warning(db: Database, settings: Settings) -> None:
    Runs(db, "waiting").add_try("t", at(5), at(4))  # its DAG run is "running"
    findings = scheduler_findings(settings, db, NOW, 1)
    none = next(f for f in findings if "no active scheduler" in f.title)
    assert none.severity is Severity.WARNING and "headrace scheduler" in none.suggestion


def test_slow_dag_file_and_import_error_from_the_processor(db: Database, settings: Settings) -> None:
    # Warning above half the import timeout: slow.py sleeps 2 s (always > 1.5 s) and has 1 s of margin before
    # the 3 s timeout; fast.py has 1.5 s. Both margins hold on a loaded 2-core machine.
    settings = load_settings(
        {
            "HEADRACE_HOME": str(settings.home),
            "HEADRACE__DATABASE__URL": db.url,
            "HEADRACE__CORE__DAGBAG_IMPORT_TIMEOUT": "3",
        }
    )
    folder = settings.dags_folder
    (folder / "slow.py").write_text(
        textwrap.dedent("""
        import time
        from datetime import datetime
        from headrace import DAG
        from headrace.operators import EmptyOperator
        time.sleep(2.0)  # top-level work: the DAG processor pays it at every parse
        with DAG("slow", schedule=None, start_date=datetime(2026, 1, 1)):
            EmptyOperator(task_id="t")
    """)
    )
    (folder / "fast.py").write_text(
        textwrap.dedent("""
        from datetime import datetime
        from headrace import DAG
        from headrace.operators import EmptyOperator
        with DAG("fast", schedule=None, start_date=datetime(2026, 1, 1)):
            EmptyOperator(task_id="t")
    """)
    )
    (folder / "broken.py").write_text("from headrace import DAG\nimport no_such_module_here\n")
    make_processor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        parsed = {f.fileloc.rsplit("/", 1)[-1]: f.parse_seconds for f in session.scalars(select(DagFile))}
    assert parsed["slow.py"] >= 2.0

    findings = parse_findings(settings, db)
    slow = [f for f in findings if f.severity is Severity.WARNING and "to parse" in f.title]
    assert len(slow) == 1 and slow[0].figures["fileloc"].endswith("slow.py")
    assert "HEADRACE__CORE__DAGBAG_IMPORT_TIMEOUT=" in slow[0].suggestion
    summary = next(f for f in findings if f.figures.get("slowest"))
    assert summary.figures["slowest"][0]["fileloc"].endswith("slow.py")
    errors = next(f for f in findings if "failed to import" in f.title)
    assert errors.severity is Severity.WARNING and errors.figures["import_errors"] == 1
    assert "no_such_module_here" in errors.figures["files"][0]["message"]
