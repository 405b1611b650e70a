"""Task callbacks and listener events for tries the scheduler ends as zombies (their supervisor is gone)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import psutil

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.observability.listener import Listener, TryInfo
from headrace.scheduler.loop import run
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI
from headrace.supervisor.identity import hostname
from headrace.testing import FakeClock
from tests.scheduler.conftest import NOW, FakeExecutor, move_ti, tis
from tests.waiting import wait_until

from .conftest import write_dag


def test_zombie_runs_task_callbacks_once_and_emits(settings: Settings, db: Database, tmp_path: Path) -> None:
    out, log_file = tmp_path / "calls.txt", tmp_path / "attempt.log"
    write_dag(
        settings,
        "zombies",
        f"""
        from datetime import timedelta
        from headrace import DAG
        from headrace.operators import EmptyOperator

        def record(kind):
            def callback(context):
                print("callback", kind, "ran")
                with open({str(out)!r}, "a") as f:
                    f.write(f"{{kind}} {{context['ti'].task_id}} {{context['ti'].try_number}} "
                            f"{{type(context['exception']).__name__}}\\n")
            return callback

        with DAG("zombies", default_args={{"on_failure_callback": record("failure"),
                                           "on_retry_callback": record("retry")}}):
            EmptyOperator(task_id="final")
            EmptyOperator(task_id="again", retries=2, retry_delay=timedelta(minutes=5))
    """,
    )
    DagProcessor(settings, db).refresh(NOW)
    with db.session() as session:
        trigger_dag(session, "zombies", now=NOW)
        start_queued_runs(session, NOW)
    gone = subprocess.Popen(["sleep", "60"])
    start_time = psutil.Process(gone.pid).create_time()
    gone.kill()
    gone.wait()
    for task_id in ("final", "again"):
        ti = tis(db)[task_id]
        move_ti(db, ti.id, TI.RUNNING)
        with db.session() as session:  # its supervisor (now dead) had claimed it
            session.add(
                TaskTry(
                    task_instance_id=ti.id,
                    dag_id="zombies",
                    run_id=ti.run_id,
                    task_id=task_id,
                    try_number=1,
                    state="running",
                    hostname=hostname(),
                    supervisor_pid=gone.pid,
                    supervisor_start_time=start_time,
                    start_date=NOW,
                    heartbeat_at=NOW,
                    log_path=str(log_file),
                )
            )
    seen: list[tuple[str, TryInfo]] = []

    class Recorder(Listener):
        def on_zombie(self, info: TryInfo, reason: str) -> None:
            seen.append(("zombie", info))

        def on_try_finished(self, info: TryInfo) -> None:
            seen.append(("finished", info))

    for restart in range(2):  # the first scheduler ends them at start-up; the second finds nothing to do
        run(
            settings,
            db,
            FakeExecutor(db, slots=0),
            clock=FakeClock(NOW + timedelta(seconds=restart)),
            num_loops=2,
            listeners=[Recorder()],
        )
    assert tis(db)["final"].state == "failed" and tis(db)["again"].state == "up_for_retry"
    lines = wait_until(
        lambda: out.exists() and len(out.read_text().splitlines()) == 2 and sorted(out.read_text().splitlines()),
        30,
        "the two callbacks' lines",
    )
    assert lines == ["failure final 1 RuntimeError", "retry again 1 RuntimeError"]
    wait_until(
        lambda: "callback failure ran" in log_file.read_text(), 30, "the failure callback in the try's log"
    )  # output goes to the try's log
    assert sorted((kind, i.task_id, i.state, i.end_reason) for kind, i in seen) == [
        ("finished", "again", "up_for_retry", "zombie"),
        ("finished", "final", "failed", "zombie"),
        ("zombie", "again", "up_for_retry", "zombie"),
        ("zombie", "final", "failed", "zombie"),
    ]


def test_zombie_callbacks_run_when_the_try_log_folder_is_not_on_this_host(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The try ran on another host: its recorded log folder does not exist here. The scheduler creates it, the
    callback runs and its output lands in the log file."""
    out, log_file = tmp_path / "calls.txt", tmp_path / "other-host" / "dag_id=lost" / "attempt=1.log"
    write_dag(
        settings,
        "lost",
        f"""
        from headrace import DAG
        from headrace.operators import EmptyOperator

        def record(context):
            print("callback failure ran")
            with open({str(out)!r}, "a") as f:
                f.write(context['ti'].task_id + "\\n")

        with DAG("lost", default_args={{"on_failure_callback": record}}):
            EmptyOperator(task_id="final")
    """,
    )
    DagProcessor(settings, db).refresh(NOW)
    with db.session() as session:
        trigger_dag(session, "lost", now=NOW)
        start_queued_runs(session, NOW)
    gone = subprocess.Popen(["sleep", "60"])
    start_time = psutil.Process(gone.pid).create_time()
    gone.kill()
    gone.wait()
    ti = tis(db)["final"]
    move_ti(db, ti.id, TI.RUNNING)
    with db.session() as session:
        session.add(
            TaskTry(
                task_instance_id=ti.id,
                dag_id="lost",
                run_id=ti.run_id,
                task_id="final",
                try_number=1,
                state="running",
                hostname=hostname(),
                supervisor_pid=gone.pid,
                supervisor_start_time=start_time,
                start_date=NOW,
                heartbeat_at=NOW,
                log_path=str(log_file),
            )
        )
    run(settings, db, FakeExecutor(db, slots=0), clock=FakeClock(NOW), num_loops=2)
    assert tis(db)["final"].state == "failed"
    wait_until(lambda: out.exists() and out.read_text() == "final\n", 30, "the failure callback's line")
    wait_until(lambda: log_file.exists() and "callback failure ran" in log_file.read_text(), 30, "its output")
