"""supervise(): one try from claim to recorded outcome, with real processes on both backends."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
from headrace.logs.files import try_log_path
from tests.pgbouncer import WITH_PGBOUNCER
from tests.supervisor.tryrows import (
    create_run,
    fork_supervisor,
    make_try,
    queue_try,
    requeue,
    run_supervisor,
    ti_row,
    try_row,
    wait_exit,
    write_dag,
    xcom_value,
)


@WITH_PGBOUNCER
def test_success_pushes_and_pulls_xcom(db: Database, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "pulled.json"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
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
    """,
    )
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


def test_exception_retries_with_backoff_then_fails(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("flaky") as dag:
            def boom():
                raise ValueError("boom")
            PythonOperator(task_id="t", python_callable=boom, retries=2, retry_delay=10,
                           retry_exponential_backoff=True, max_retry_delay=15)
    """,
    )
    request = make_try(db, dag_file, "flaky", "t")
    expected_delays = {1: 10.0, 2: 15.0}  # 10 * 2**0; 10 * 2**1 = 20 capped at 15
    for n in (1, 2, 3):
        assert run_supervisor(settings, request) == 0
        ti = ti_row(db, request.ti_id)
        row = try_row(db, request.ti_id, n)
        assert row is not None and row.end_date is not None
        assert (row.end_reason, row.error, row.exit_code) == ("failed", "ValueError: boom", 1)
        if n < 3:
            assert ti.state == "up_for_retry" and ti.next_retry_at is not None
            delay = (ti.next_retry_at - row.end_date).total_seconds()
            assert abs(delay - expected_delays[n]) < 0.5
            request = requeue(db, request)
        else:
            assert ti.state == "failed" and ti.next_retry_at is None
    log = Path(row.log_path).read_text()
    assert "Traceback (most recent call last)" in log and 'raise ValueError("boom")' in log


def test_fail_task_skips_retries_and_callbacks_run(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        def on_failure(context):
            print("FAILURE CALLBACK", type(context["exception"]).__name__)
        def bad_callback(context):
            raise RuntimeError("callback broke")
        with DAG("ft") as dag:
            def stop():
                raise FailTask("no point retrying")
            PythonOperator(task_id="t", python_callable=stop, retries=3,
                           on_failure_callback=[bad_callback, on_failure])
    """,
    )
    request = make_try(db, dag_file, "ft", "t")
    assert run_supervisor(settings, request) == 0
    ti = ti_row(db, request.ti_id)
    assert (ti.state, ti.end_reason) == ("failed", "failed")
    row = try_row(db, request.ti_id, 1)
    assert row is not None and row.error == "FailTask: no point retrying"
    log = Path(row.log_path).read_text()
    assert "FAILURE CALLBACK FailTask" in log
    assert "callback bad_callback failed" in log and "RuntimeError: callback broke" in log


def test_skip_task_and_retry_task_delay(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("st") as dag:
            def skip():
                raise SkipTask("nothing to do")
            def again():
                raise RetryTask("later", delay=42)
            PythonOperator(task_id="skip", python_callable=skip, retries=1)
            PythonOperator(task_id="again", python_callable=again, retries=1, retry_delay=1)
    """,
    )
    run_pk = create_run(db, dag_file, "st")
    skip = queue_try(db, run_pk, "skip", dag_file)
    assert run_supervisor(settings, skip) == 0
    ti = ti_row(db, skip.ti_id)
    assert (ti.state, ti.end_reason) == ("skipped", "skipped")
    again = queue_try(db, run_pk, "again", dag_file)
    assert run_supervisor(settings, again) == 0
    ti = ti_row(db, again.ti_id)
    row = try_row(db, again.ti_id, 1)
    assert row is not None and row.end_date is not None and ti.next_retry_at is not None
    assert ti.state == "up_for_retry"
    assert abs((ti.next_retry_at - row.end_date).total_seconds() - 42) < 0.5


def test_bash_non_zero_exit_fails(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("bash") as dag:
            BashOperator(task_id="b", bash_command="echo hello from bash; exit 3")
    """,
    )
    request = make_try(db, dag_file, "bash", "b")
    assert run_supervisor(settings, request) == 0
    ti = ti_row(db, request.ti_id)
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (ti.state, row.end_reason) == ("failed", "failed")
    assert row.error is not None and "non-zero exit code 3" in row.error
    assert "hello from bash" in Path(row.log_path).read_text()


def test_import_error_is_not_started(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("imp") as dag:
            PythonOperator(task_id="t", python_callable=print)
    """,
    )
    request = make_try(db, dag_file, "imp", "t")
    dag_file.write_text(dag_file.read_text() + "\nraise ImportError('missing dependency')\n")
    assert run_supervisor(settings, request) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (row.state, row.end_reason, row.error) == ("failed", "not_started", "ImportError: missing dependency")
    assert "could not load task t" in Path(row.log_path).read_text()


def test_execution_timeout(db: Database, settings: Settings, tmp_path: Path) -> None:
    settings = settings.with_overrides({"executor": {"kill_grace_period": 3, "memory_poll_interval": 0.05}})
    dag_file = write_dag(
        tmp_path / "dags",
        """
        with DAG("slow") as dag:
            PythonOperator(task_id="t", python_callable=lambda: time.sleep(60), execution_timeout=0.5)
    """,
    )
    request = make_try(db, dag_file, "slow", "t")
    assert run_supervisor(settings, request, timeout=20) == 0
    ti = ti_row(db, request.ti_id)
    row = try_row(db, request.ti_id, 1)
    assert row is not None
    assert (ti.state, ti.end_reason, row.end_reason) == ("failed", "timeout", "timeout")
    assert row.error == "execution_timeout of 0.5 s exceeded"
    log = Path(row.log_path).read_text()
    assert "execution_timeout of 0.5 s exceeded; sending SIGTERM" in log
    assert "task stopped: received signal SIGTERM" in log


@WITH_PGBOUNCER
def test_two_supervisors_race_only_one_runs(db: Database, settings: Settings, tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        with DAG("race") as dag:
            def once():
                with open({str(ran)!r}, "a") as f:
                    f.write(f"{{os.getpid()}}\\n")
            PythonOperator(task_id="t", python_callable=once)
    """,
    )
    request = make_try(db, dag_file, "race", "t")
    pids = [fork_supervisor(settings, request) for _ in range(2)]
    codes = sorted(wait_exit(pid) for pid in pids)
    assert codes == [0, 2]
    assert len(ran.read_text().splitlines()) == 1
    assert ti_row(db, request.ti_id).state == "success"


def test_branch_skips_the_other_task_and_new_try_clears_xcoms(db: Database, settings: Settings, tmp_path: Path) -> None:
    dag_file = write_dag(
        tmp_path / "dags",
        """
        from headrace.operators import BranchPythonOperator, EmptyOperator
        with DAG("br") as dag:
            pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "a")
            pick >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
            def push_then_fail(ti):
                if ti.try_number == 1:
                    ti.xcom_push("left_over", 1)
                    raise RuntimeError("first try fails")
            PythonOperator(task_id="p", python_callable=push_then_fail, retries=1, retry_delay=0)
    """,
    )
    run_pk = create_run(db, dag_file, "br")
    pick = queue_try(db, run_pk, "pick", dag_file)
    assert run_supervisor(settings, pick) == 0
    with db.session() as session:
        states = dict(
            session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_run_id == run_pk)
            ).all()
        )
    assert states["pick"] == "success" and states["a"] == "none" and states["b"] == "skipped"
    p = queue_try(db, run_pk, "p", dag_file)
    assert run_supervisor(settings, p) == 0
    assert xcom_value(db, run_pk, "p", "left_over") == "1"
    assert run_supervisor(settings, requeue(db, p)) == 0
    assert ti_row(db, p.ti_id).state == "success"
    assert xcom_value(db, run_pk, "p", "left_over") is None
