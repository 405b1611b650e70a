"""Several active schedulers on PostgreSQL share one workload, and none of the races Airflow users met happens.

Real processes: three ``headrace scheduler`` processes (``python -m headrace.scheduler``, LocalExecutor,
``scheduler.standalone_dag_processor`` on) and one ``headrace dag-processor``, on one PostgreSQL database.
The workload: two DAGs catching up many runs at once, each a fan-out; a ``max_active_runs=1`` DAG catching up
runs; a pool of 2 slots that six tasks want; an asset producer (catching up runs) and its consumer; a DAG that
misses its deadline; a DAG whose task fails (alerts ``failed`` and ``run_failed``), alerts mailed to a real
SMTP server (aiosmtpd). Checked from the database, the tasks' own records and the mailbox: no DAG run created
twice, ``max_active_runs`` and the pool never exceeded (from try and run timestamps), no asset event
consumed by two runs, each notification sent once, no deadlock in any log, every run finished, one success per
task instance, each task's code run once, every try's host and pid true. Then a SIGKILL of one of two
schedulers mid-workload: the other finishes everything and runs nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from headrace.config import Settings
from headrace.db.asset_models import AssetDagRunQueue, DagRunAssetEvent
from headrace.db.engine import Database
from headrace.db.models import DagRun, DeadlineMiss, Notification, Pool, TaskInstance, TaskTry
from tests.observability.conftest import smtp_server  # noqa: F401 — the fixture, used by name
from tests.waiting import wait_until

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

FAST = {
    "scheduler": {
        "loop_interval": 0.2,
        "dag_dir_list_interval": 1.0,
        "heartbeat_interval": 0.5,
        "standalone_dag_processor": True,
        "orphaned_tasks_check_interval": 1.0,
    },
    "core": {"executor": "local", "parallelism": 8},
    "executor": {"forkserver_idle_timeout": 5},
}

_TASK = """
import json, os, socket, time
from datetime import datetime, timedelta, timezone
from headrace import DAG, Asset, task

OUT = {out!r}
START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours={hours})


def record(context, seconds=0.0, fail=False):
    with open(os.path.join(OUT, context["dag"].dag_id + ".jsonl"), "a") as f:
        f.write(json.dumps({{"run_id": context["run_id"], "task_id": context["task"].task_id,
                            "pid": os.getpid(), "host": socket.gethostname()}}) + "\\n")
    time.sleep(seconds)
    if fail:
        raise RuntimeError("this task fails, for the alert")
"""

_DAGS = {
    # Two DAGs catching up eight runs each at once, a fan-out in each run.
    **{
        f"fan_{i}": """
with DAG("fan_{i}", schedule=timedelta(hours=1), start_date=START, catchup=True):
    @task
    def start(**context): record(context)
    @task
    def end(**context): record(context)
    first, last = start(), end()
    for n in range(4):
        @task(task_id=f"w{{n}}")
        def work(**context): record(context)
        first >> work() >> last
""".replace("{i}", str(i))
        for i in range(2)
    },
    # max_active_runs=1, catching up: its runs must follow one another.
    "serial": """
with DAG("serial", schedule=timedelta(hours=1), start_date=START, catchup=True, max_active_runs=1):
    @task
    def a(**context): record(context, 0.2)
    @task
    def b(**context): record(context, 0.2)
    a() >> b()
""",
    # Three tasks per run, four runs at once, want a pool of 2 slots.
    "pooled": """
with DAG("pooled", schedule=None):
    for n in range(3):
        @task(task_id=f"p{{n}}", pool="two")
        def hold(**context): record(context, 0.3)
        hold()
""",
    # An asset producer catching up runs, and its consumer.
    "producer": """
with DAG("producer", schedule=timedelta(hours=2), start_date=START, catchup=True):
    @task(outlets=[Asset("made")])
    def make(**context): record(context, 0.1)
    make()
""",
    "consumer": """
with DAG("consumer", schedule=[Asset("made")]):
    @task
    def use(**context): record(context)
    use()
""",
    # A run that misses its deadline, and a task that fails: alerts.
    "late": """
with DAG("late", schedule=None, deadline=timedelta(seconds=1), deadline_reference="run_start"):
    @task
    def slow(**context): record(context, 2.5)
    slow()
""",
    "failing": """
with DAG("failing", schedule=None):
    @task(retries=0)
    def boom(**context): record(context, 0.0, True)
    boom()
""",
}


def write_workload(settings: Settings, out: Path, *, hours: int = 8) -> None:
    """Write the workload's DAG files into the dags folder; their tasks record themselves in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    header = textwrap.dedent(_TASK).format(out=str(out), hours=hours)
    for dag_id, body in _DAGS.items():
        (settings.dags_folder / f"{dag_id}.py").write_text(header + textwrap.dedent(body).replace("{{n}}", "{n}"))


def start(settings: Settings, log: Path, *command: str) -> subprocess.Popen[bytes]:
    """``python -m <command>`` with ``settings``, output to ``log``."""
    env = {**os.environ, **settings.to_env()}
    with log.open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", *command], env=env, stdout=output, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM and wait (SIGKILL after 30 s); the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """``cluster(n)``: start a ``headrace dag-processor`` and ``n`` schedulers; all stopped at the end."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def launch(n: int, run_settings: Settings) -> list[subprocess.Popen[bytes]]:
        processor_log = tmp_path / "dag-processor.log"
        procs.append((start(run_settings, processor_log, "headrace", "dag-processor"), processor_log))
        schedulers = []
        for i in range(n):
            log = tmp_path / f"scheduler-{i}.log"
            proc = start(run_settings, log, "headrace.scheduler")
            procs.append((proc, log))
            schedulers.append(proc)
        return schedulers

    yield launch
    codes = [(stop(proc), log) for proc, log in procs]
    for code, log in codes:
        assert code in (0, -signal.SIGKILL), f"{log.name} exited with {code}:\n{log.read_text()[-3000:]}"


def all_finished(db: Database, expected_dags: set[str]) -> bool:
    """Every run finished, and the max_active_runs=1 DAG has caught up as many runs as the others (its runs
    are created one at a time)."""
    with db.session() as session:
        rows = session.execute(select(DagRun.dag_id, DagRun.state, DagRun.run_type)).all()
    counts = Counter(d for d, _, _ in rows)
    scheduled_serial = sum(1 for d, _, t in rows if d == "serial" and t == "scheduled")
    return (
        set(counts) >= expected_dags
        and scheduled_serial == counts["fan_0"]
        and all(s in ("success", "failed") for _, s, _ in rows)
    )


def trigger(db: Database, *dag_ids: str) -> None:
    """A manual run of each of ``dag_ids`` (a DAG named n times gets n runs, a second apart in logical date)."""
    from datetime import timedelta

    from headrace.scheduler.runs import trigger_dag

    now = datetime.now(UTC)
    with db.session() as session:
        for i, dag_id in enumerate(dag_ids):
            trigger_dag(session, dag_id, now=now - timedelta(seconds=i))


def wait_for_dags(db: Database, dag_ids: set[str]) -> None:
    from headrace.db.models import DagModel

    def parsed() -> bool:
        with db.session() as session:
            return set(session.scalars(select(DagModel.dag_id))) >= dag_ids

    wait_until(parsed, 60, "the DAG processor to store the DAGs")


def run_counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {d: int(n) for d, n in session.execute(select(DagRun.dag_id, func.count()).group_by(DagRun.dag_id))}


def overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an interval ending when another starts does not overlap it)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def check_consistent(db: Database, out: Path, logs: list[Path]) -> dict[str, int]:
    """The checks every scenario ends with; returns tries per DAG."""
    with db.session() as session:
        runs = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date)
        ).all()
        tis = session.execute(
            select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state)
        ).all()
        tries = list(session.scalars(select(TaskTry)))
        session.expunge_all()
    # No DAG run created twice: (dag_id, run_id) unique, and one run per logical hour of each catching-up DAG.
    assert len({(r.dag_id, r.run_id) for r in runs}) == len(runs)
    assert all(r.state in ("success", "failed") for r in runs), [
        r for r in runs if r.state not in ("success", "failed")
    ]
    # One success per task instance (the failing task excepted), each with exactly one try (no retries here).
    for ti in tis:
        expected = "failed" if ti.dag_id == "failing" else "success"
        assert ti.state == expected, ti
    per_ti = Counter((t.dag_id, t.run_id, t.task_id) for t in tries)
    assert set(per_ti.values()) == {1}, [k for k, v in per_ti.items() if v > 1]
    assert len(per_ti) == len(tis)
    # Each task's code ran once, and every try's host and pid are the task process's own.
    recorded: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for path in out.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            recorded.setdefault((path.stem, rec["run_id"], rec["task_id"]), []).append(rec)
    assert {k: len(v) for k, v in recorded.items()} == dict.fromkeys(per_ti, 1)
    for t in tries:
        [rec] = recorded[(t.dag_id, t.run_id, t.task_id)]
        assert (t.hostname, t.pid) == (rec["host"], rec["pid"]) == (socket.gethostname(), rec["pid"]), t
    # max_active_runs=1: the serial DAG's runs (and their tries) never overlap.
    serial = [(r.start_date, r.end_date) for r in runs if r.dag_id == "serial"]
    assert serial and overlap(serial) == 1
    assert overlap([(t.start_date, t.end_date) for t in tries if t.dag_id == "serial"]) == 1
    # The pool of 2 slots: never more than 2 of its tries at once.
    pooled = [(t.start_date, t.end_date) for t in tries if t.dag_id == "pooled"]
    assert len(pooled) == 3 * sum(r.dag_id == "pooled" for r in runs) and overlap(pooled) == 2
    # No deadlock, no crash in any process's log.
    for log in logs:
        text = log.read_text()
        assert "deadlock detected" not in text.lower(), log.name
        assert "Traceback" not in text, f"{log.name}:\n{text[-3000:]}"
    return dict(Counter(t.dag_id for t in tries))


def check_assets(db: Database) -> None:
    """No asset event consumed by two runs, no asset-triggered run created twice, nothing left queued."""
    with db.session() as session:
        links = session.execute(select(DagRunAssetEvent.dag_run_id, DagRunAssetEvent.event_id)).all()
        consumer_runs = session.scalars(select(DagRun).where(DagRun.dag_id == "consumer")).all()
        producer_runs = session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id == "producer"))
        queued = session.scalar(select(func.count()).select_from(AssetDagRunQueue))
    events = Counter(e for _, e in links)
    assert events and set(events.values()) == {1}  # each event triggered one run
    assert 1 <= len(consumer_runs) <= (producer_runs or 0)
    assert len({r.logical_date for r in consumer_runs}) == len(consumer_runs)
    assert {r.run_type for r in consumer_runs} == {"asset_triggered"}
    assert queued == 0


def check_notifications(db: Database, mailbox: list[Any]) -> None:
    """Each alert written once per event (deadline miss, task failed, run failed) and mailed once."""
    with db.session() as session:
        misses = session.execute(select(DeadlineMiss.dag_id, DeadlineMiss.task_id)).all()
        rows = session.execute(select(Notification.event_key, Notification.event, Notification.sent_at)).all()
    assert misses == [("late", "")]
    assert sorted(r.event for r in rows) == ["deadline_missed", "failed", "run_failed"]
    assert len({r.event_key for r in rows}) == len(rows)
    wait_until(lambda: len(mailbox) >= len(rows), 30, "the alerts to be mailed")
    subjects = [m.content.decode().split("Subject: ", 1)[1].splitlines()[0] for m in mailbox]
    assert len(subjects) == len(rows) == len(set(subjects)), subjects


def test_three_schedulers_share_one_workload(
    settings: Settings,
    db: Database,
    tmp_path: Path,
    cluster: Any,
    smtp_server: tuple[int, list[Any]],  # noqa: F811 — the fixture
) -> None:
    port, mailbox = smtp_server
    run_settings = settings.with_overrides(
        {
            **FAST,
            "alerts": {"email_to": "ops@example.com", "smtp_host": "127.0.0.1", "smtp_port": port},
        }
    )
    out = tmp_path / "out"
    write_workload(run_settings, out, hours=6)
    with db.session() as session:
        session.add(Pool(name="two", slots=2))
    cluster(3, run_settings)
    wait_for_dags(db, set(_DAGS))
    # Manual runs: several queued runs of the max_active_runs=1 DAG at once, and four runs wanting the pool.
    trigger(db, "serial", "serial", "serial", "pooled", "pooled", "pooled", "pooled", "late", "failing")
    wait_until(lambda: all_finished(db, set(_DAGS)), 80, "every DAG run to finish")
    logs = sorted(tmp_path.glob("*.log"))
    tries = check_consistent(db, out, logs)
    runs = run_counts(db)
    assert runs["fan_0"] == runs["fan_1"] == runs["serial"] - 3 >= 6  # hourly runs caught up at once (+3 manual)
    assert tries["fan_0"] == tries["fan_1"] == runs["fan_0"] * 6
    assert tries["serial"] == runs["serial"] * 2
    check_assets(db)
    check_notifications(db, mailbox)
    # The three schedulers really shared the work: each queued tries.
    with db.session() as session:
        jobs = session.execute(select(TaskInstance.queued_by_job_id).distinct()).scalars().all()
    assert len(set(jobs) - {None}) >= 2, jobs


def test_sigkill_of_one_of_two_schedulers(settings: Settings, db: Database, tmp_path: Path, cluster: Any) -> None:
    run_settings = settings.with_overrides(FAST)
    out = tmp_path / "out"
    write_workload(run_settings, out, hours=4)
    for name in ("late", "failing", "consumer", "producer"):  # the alerts and assets are the first test's
        (run_settings.dags_folder / f"{name}.py").unlink()
    with db.session() as session:
        session.add(Pool(name="two", slots=2))
    first, second = cluster(2, run_settings)
    expected = {"fan_0", "fan_1", "serial", "pooled"}
    wait_for_dags(db, expected)
    trigger(db, "serial", "serial", "pooled", "pooled", "pooled")

    def busy() -> bool:
        with db.session() as session:
            done = session.scalar(select(func.count()).select_from(TaskTry).where(TaskTry.end_date.is_not(None)))
        return (done or 0) >= 20

    wait_until(busy, 60, "the workload to be under way")
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_until(lambda: all_finished(db, expected), 80, "the surviving scheduler to finish every run")
    assert second.poll() is None
    tries = check_consistent(db, out, [p for p in tmp_path.glob("*.log") if p.name != "scheduler-0.log"])
    runs = run_counts(db)
    assert runs["fan_0"] == runs["fan_1"] == runs["serial"] - 2 >= 4
    assert tries["fan_0"] == tries["fan_1"] == runs["fan_0"] * 6
    assert tries["serial"] == runs["serial"] * 2
