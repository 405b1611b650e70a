"""StatsD: the listener's packets arrive on a real UDP socket on loopback, also from a real scheduler run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from statsd import StatsClient

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.observability.listener import RunInfo, TryInfo
from headrace.observability.statsd import StatsdListener

from .conftest import run_dag, write_dag


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def receive_lines(sock: socket.socket) -> list[str]:
    """Every metric line waiting on ``sock`` (the first read waits up to the socket timeout)."""
    lines: list[str] = []
    sock.settimeout(10)
    while True:
        try:
            data = sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return lines
        lines += data.decode().splitlines()
        sock.settimeout(0.2)


def test_events_become_statsd_packets(udp: socket.socket) -> None:
    listener = StatsdListener(StatsClient("127.0.0.1", udp.getsockname()[1], prefix="hr"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    listener.on_try_finished(
        TryInfo(
            dag_id="etl",
            task_id="load.part",
            run_id="r",
            try_number=1,
            state="failed",
            end_reason="exception",
            queued_at=start - timedelta(seconds=0.25),
            start_date=start,
            end_date=start + timedelta(seconds=2),
            peak_rss_bytes=1 << 20,
            cpu_seconds=0.5,
        )
    )
    listener.on_run_finished(RunInfo(dag_id="etl", run_id="r", state="failed", start_date=start, end_date=start))
    listener.on_dag_file_parsed("/dags/etl.py", 0.125, False)
    lines = receive_lines(udp)
    assert "hr.ti.finished.failed:1|c" in lines
    assert "hr.ti.failures.etl.load_part:1|c" in lines  # a dot in an id must not make a new level
    assert "hr.ti.duration:2000.000000|ms" in lines
    assert "hr.ti.scheduling_delay:250.000000|ms" in lines
    assert f"hr.ti.peak_rss_bytes:{1 << 20}|g" in lines
    assert "hr.dagrun.finished.failed:1|c" in lines
    assert "hr.dag_processing.parse_duration.etl:125.000000|ms" in lines
    assert "hr.dag_processing.import_errors:1|c" in lines


def test_scheduler_sends_statsd_when_configured(settings: Settings, db: Database, udp: socket.socket) -> None:
    settings = settings.with_overrides(
        {"metrics": {"statsd_host": "127.0.0.1", "statsd_port": udp.getsockname()[1], "statsd_prefix": "headrace"}}
    )
    write_dag(
        settings,
        "udp",
        """
        from headrace import DAG
        from headrace.operators import EmptyOperator
        with DAG("udp"):
            EmptyOperator(task_id="only")
    """,
    )
    assert run_dag(settings, db, "udp").state == "success"
    lines = receive_lines(udp)
    assert "headrace.ti.queued:1|c" in lines
    assert "headrace.ti.finished.success:1|c" in lines
    assert "headrace.dagrun.finished.success:1|c" in lines
    assert any(line.startswith("headrace.scheduler.loop_duration:") for line in lines)
