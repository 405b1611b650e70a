"""Prometheus: /metrics scraped during a real run moves; the scheduler's own server; listener plumbing."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from headrace.api.app import create_app
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.observability.listener import Listener, Listeners
from headrace.observability.metrics import SchedulerMetrics, start_scheduler_metrics_server

from .conftest import run_dag, write_dag

DAG_SOURCE = """
    from headrace import DAG
    from headrace.operators import PythonOperator

    def work():
        return sum(range(1000))

    def boom():
        raise ValueError("boom")

    with DAG("observed"):
        a = PythonOperator(task_id="a", python_callable=work)
        b = PythonOperator(task_id="b", python_callable=work)
        bad = PythonOperator(task_id="bad", python_callable=boom)
        a >> b
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_during_a_real_run(settings: Settings, db: Database, token_for: Callable[[str], str]) -> None:
    write_dag(settings, "observed", DAG_SOURCE)
    metrics = SchedulerMetrics()
    client = TestClient(create_app(settings, db, metrics_registry=metrics.registry))
    viewer = {"Authorization": f"Bearer {token_for('viewer')}"}
    assert client.get("/metrics").status_code == 401  # login needed
    scrapes: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []

    def scrape(_now: datetime) -> None:
        response = client.get("/metrics", headers=viewer)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        scrapes.append(samples(response.text))

    # the run can end before the last try's supervisor has exited (its executor event gives on_try_finished)
    tries_seen = lambda: metrics.registry.get_sample_value("headrace_try_duration_seconds_count") == 3  # noqa: E731
    run = run_dag(settings, db, "observed", listeners=[metrics], each_loop=scrape, until=tries_seen)
    scrape(datetime.now(UTC))
    assert run.state == "failed"
    first, last = scrapes[0], scrapes[-1]
    # DB collector: task instances by state change while the run goes on.
    assert value(first, "headrace_task_instances", state="success") == 0
    assert value(last, "headrace_task_instances", state="success") == 2
    assert value(last, "headrace_task_instances", state="failed") == 1
    assert value(last, "headrace_dag_runs", state="failed") == 1
    assert value(last, "headrace_executor_used_slots") == 0
    assert value(last, "headrace_executor_open_slots") == settings.parallelism
    assert value(last, "headrace_metadb_up") == 1
    assert 0 <= value(scrapes[-2], "headrace_scheduler_heartbeat_age_seconds") < 60  # while it ran
    # Scheduler registry: histograms and counters fed by the listener events.
    assert value(first, "headrace_try_duration_seconds_count") == 0
    assert value(last, "headrace_try_duration_seconds_count") == 3
    assert value(last, "headrace_scheduling_delay_seconds_count") == 3
    assert value(last, "headrace_try_peak_rss_bytes_count") == 3
    assert value(last, "headrace_tries_queued_total") == 3
    assert value(last, "headrace_tries_finished_total", state="success") == 2
    assert value(last, "headrace_task_failures_total", dag_id="observed", task_id="bad") == 1
    assert value(last, "headrace_task_failures_total", dag_id="observed", task_id="a") == 0
    assert value(last, "headrace_dag_runs_finished_total", state="failed") == 1
    assert value(last, "headrace_scheduler_loop_duration_seconds_count") >= len(scrapes) - 1
    assert value(last, "headrace_scheduler_heartbeat_timestamp_seconds") > 0
    parsed = [labels for (name, labels) in last if name == "headrace_dag_file_parse_duration_seconds"]
    assert [dict(labels)["fileloc"].endswith("observed.py") for labels in parsed] == [True]


def test_scheduler_metrics_server_and_port_in_use(caplog: pytest.LogCaptureFixture) -> None:
    metrics = SchedulerMetrics()
    metrics.tries_queued.inc(3)
    assert start_scheduler_metrics_server(metrics.registry, 0) is None  # 0: off
    with socket.socket() as taken:  # a port this test holds: certainly in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with caplog.at_level(logging.WARNING):
            assert start_scheduler_metrics_server(metrics.registry, taken.getsockname()[1]) is None
    assert "cannot listen" in caplog.text

    server = None
    for _ in range(5):  # a probed free port can be taken by another process before the server binds it
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = start_scheduler_metrics_server(metrics.registry, port)
        if server is not None:
            break
    assert server is not None, "no free port in 5 attempts"
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "headrace_tries_queued_total 3.0" in text
    finally:
        server.shutdown()
        server.server_close()


def test_listeners_emit_to_each_and_survive_a_broken_one(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[float] = []

    class Broken(Listener):
        def on_loop(self, duration_seconds: float, now: datetime) -> None:
            raise RuntimeError("listener bug")

    class Recorder(Listener):
        def on_loop(self, duration_seconds: float, now: datetime) -> None:
            seen.append(duration_seconds)

    listeners = Listeners([Broken(), Recorder()])
    with caplog.at_level(logging.ERROR):
        listeners.emit("on_loop", 0.5, datetime.now(UTC))
    assert seen == [0.5]
    assert "listener Broken failed on on_loop" in caplog.text
    with pytest.raises(ValueError, match="unknown listener event"):
        listeners.emit("on_nothing")
