"""supervise(): one try from claim to recorded outcome, with real processes on both backends."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.logs.files import try_log_path

from supervisor.tryrows import (
    create_run,
    make_try,
    queue_try,
    requeue,
    run_supervisor,
    ti_row,
    try_row,
    write_dag,
    xcom_value,
)


def test_success_pushes_and_pulls_xcom(db: Database, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "pulled.json"
    dag_file = write_dag(tmp_path / "dags", f"""
        with DAG("xc") as dag:
            def produce():
                print("producing")
                return {{"n": 41, "when": datetime(2024, 1, 1)}}
            def consume(ti):
                value = ti.xcom_pull(task_ids="produce")
                open({str(out)!r}, "w").write(str(value["n"] + 1))
            p = PythonOperator(task_id="produce", python_callable=produce)
            c = PythonOperator(task_id="consume", python_callable=consume)
            p >> c
    """)
    run_pk = create_run(db, dag_file, "xc")
    first = queue_try(db, run_pk, "produce", dag_file)
    assert run_supervisor(settings, first) == 0
    assert json.loads(xcom_value(db, run_pk, "produce") or "null")["n"] == 41
    second = queue_try(db, run_pk, "consume", dag_file)
    assert run_supervisor(settings, second) == 0
    assert out.read_text() == "42"
    ti = ti_row(db, second.ti_id)
    assert (ti.state, ti.end_reason) == ("success", "success")
    row = try_row(db, first.ti_id, 1)
    assert row is not None
    assert (row.state, row.end_reason, row.exit_code, row.signal) == ("success", "success", 0, None)
    assert row.pid and row.process_start_time and row.peak_rss_bytes and row.cpu_seconds is not None
    assert row.supervisor_pid != row.pid
    log = Path(row.log_path).read_text()
    assert row.log_path == str(try_log_path(settings.base_log_folder, "xc", "manual__1", "produce", 1))
    assert "producing" in log
    assert f"try 1 started: pid {row.pid}" in log
    assert "ended: success" in log and "peak RSS" in log
