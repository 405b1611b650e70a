"""The alert sweep: tries and DAG runs that ended while no scheduler saw them still notify, exactly once.

Tries are ended by real supervisors (forked, as ``tests/supervisor`` does)
with no scheduler running; then a real scheduler starts and its housekeeping
sweep writes the missing outbox rows, which its delivery thread sends to a
real SMTP server (aiosmtpd) and a real HTTP receiver on loopback.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Notification
from headrace.executors import make_executor
from headrace.observability.notifications import AlertConfig, Notifier, write
from headrace.observability.sweep import OVERLAP, NotificationSweep, missing_alerts
from headrace.observability.tries import ended_tries
from headrace.scheduler import housekeeping, loop, runs
from headrace.scheduler.dagcache import DagCache
from headrace.supervisor.request import TryRequest
from tests.supervisor.tryrows import create_run, queue_try, requeue, run_supervisor, write_dag

from .conftest import WebhookReceiver
from .test_alerts import alert_settings, count

FAILING = """
    def fail():
        raise RuntimeError("disk full")

    with DAG("unseen") as dag:
        PythonOperator(task_id="flaky", python_callable=fail, retries=1, retry_delay=0)
        PythonOperator(task_id="final", python_callable=fail)
"""


def new_run(db: Database, tmp_path: Path, run_id: str = "manual__1") -> tuple[Path, int]:
    """Write the ``unseen`` DAG file and create a running DAG run of it; return the file and the dag_run pk."""
    dag_file = write_dag(tmp_path / "dags", FAILING)
    return dag_file, create_run(db, dag_file, "unseen", run_id=run_id)


def run_tries(settings: Settings, db: Database, dag_file: Path, run_pk: int, task_id: str) -> TryRequest:
    """Run ``task_id`` with real supervisors (no scheduler) until it failed for good; return the last request.

    ``flaky`` takes two tries (the first leaves it up_for_retry), ``final`` one.
    """
    request = queue_try(db, run_pk, task_id, dag_file)
    assert run_supervisor(settings, request) == 0
    if task_id == "flaky":
        request = requeue(db, request)
        assert run_supervisor(settings, request) == 0
    return request


def run_scheduler_until(settings: Settings, db: Database, condition: Any, timeout: float = 60.0) -> None:
    """Run a real scheduler (local executor) until ``condition()`` holds after a loop; fail after ``timeout`` s."""
    stop = threading.Event()
    give_up = time.monotonic() + timeout
    held: list[bool] = []

    def after_loop(_now: datetime) -> None:
        if condition():
            held.append(True)
            stop.set()
        elif time.monotonic() > give_up:
            stop.set()

    loop.run(settings, db, make_executor(settings), stop=stop, after_loop=after_loop)
    assert held, f"condition did not hold within {timeout} s"


def notifications(db: Database) -> list[Notification]:
    with db.session() as session:
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
        session.expunge_all()
    return rows


def test_tries_and_run_ended_while_no_scheduler_ran_notify_once(
    settings: Settings, db: Database, tmp_path: Path, smtp_server: tuple[int, list[Any]], webhook: WebhookReceiver
) -> None:
    port, mails = smtp_server
    settings = alert_settings(settings, smtp_port=port, webhook_url=webhook.url, email_to="ops@example.com")
    dag_file, run_pk = new_run(db, tmp_path)
    for task_id in ("flaky", "final"):
        run_tries(settings, db, dag_file, run_pk, task_id)
    assert count(db) == 0

    # Three tries ended unseen (the sweep writes them); the scheduler finishes the run itself (the event path
    # writes run_failed): 4 events x 2 channels, all sent by the delivery thread.
    run_scheduler_until(settings, db, lambda: count(db, Notification.sent_at.is_not(None)) == 8)
    rows = notifications(db)
    assert sorted((r.channel, r.event, r.task_id or "", r.try_number or 0) for r in rows) == [
        (channel, event, task_id, try_number)
        for channel in ("email", "webhook")
        for event, task_id, try_number in (
            ("failed", "final", 1),
            ("failed", "flaky", 2),
            ("run_failed", "", 0),
            ("up_for_retry", "flaky", 1),
        )
    ]
    parsed = [message_from_bytes(m.content, policy=policy.default) for m in mails]
    assert sorted(str(p["Subject"]) for p in parsed) == [
        "[headrace] failed: unseen.final (run manual__1, try 1)",
        "[headrace] failed: unseen.flaky (run manual__1, try 2)",
        "[headrace] run_failed: DAG unseen (run manual__1)",
        "[headrace] up_for_retry: unseen.flaky (run manual__1, try 1)",
    ]
    assert all(m.rcpt_tos == ["ops@example.com"] for m in mails)
    final_mail = next(p.get_content() for p in parsed if "unseen.final" in str(p["Subject"]))
    assert "Error: RuntimeError: disk full" in final_mail and "End reason: failed" in final_mail
    assert (
        len(webhook.bodies) == 4
        and sum("unseen.flaky" in b["text"] and "try 2" in b["text"] for b in webhook.bodies) == 1
    )

    # A restarted scheduler sweeps the same window again: nothing new is written or sent.
    loop.run(settings, db, make_executor(settings), num_loops=3)
    assert len(notifications(db)) == 8 and len(mails) == 4 and len(webhook.bodies) == 4


def test_run_finished_by_a_scheduler_that_died_before_emitting(
    settings: Settings, db: Database, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    settings = alert_settings(settings, webhook_url=webhook.url)
    dag_file, run_pk = new_run(db, tmp_path)
    for task_id in ("flaky", "final"):
        run_tries(settings, db, dag_file, run_pk, task_id)
    with db.session() as session:  # what the dead scheduler committed; its on_run_finished never ran
        assert runs.finish_runs(session, datetime.now(UTC), cache=DagCache()) == 1
    run_scheduler_until(settings, db, lambda: len(webhook.bodies) == 4)
    assert sorted((r.event, r.task_id or "", r.try_number or 0) for r in notifications(db)) == [
        ("failed", "final", 1),
        ("failed", "flaky", 2),
        ("run_failed", "", 0),
        ("up_for_retry", "flaky", 1),
    ]
    texts = sorted(b["text"].splitlines()[0] for b in webhook.bodies)
    assert texts == [
        "[headrace] failed: unseen.final (run manual__1, try 1)",
        "[headrace] failed: unseen.flaky (run manual__1, try 2)",
        "[headrace] run_failed: DAG unseen (run manual__1)",
        "[headrace] up_for_retry: unseen.flaky (run manual__1, try 1)",
    ]


def test_an_event_the_event_path_wrote_is_not_written_again(
    settings: Settings, db: Database, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    settings = alert_settings(settings, webhook_url=webhook.url, email_to="ops@example.com")
    config = AlertConfig.from_settings(settings)
    dag_file, run_pk = new_run(db, tmp_path)
    request = run_tries(settings, db, dag_file, run_pk, "final")
    with db.read_session() as session:
        [info] = ended_tries(session, [(request.ti_id, request.try_number)])
    sweep = NotificationSweep(db, config, lookback=3600)

    # The event path first (the scheduler read the executor event), then the sweep: nothing new.
    Notifier(db, config).on_try_finished(info)
    first = notifications(db)
    assert [(r.channel, r.event) for r in first] == [("email", "failed"), ("webhook", "failed")]
    now = datetime.now(UTC)
    assert sweep(now) == 0
    assert [(r.id, r.body) for r in notifications(db)] == [(r.id, r.body) for r in first]

    # Both paths see one event at once: the sweep found it missing, the Notifier wrote it, the sweep's
    # write then inserts nothing (same event_key, ON CONFLICT DO NOTHING).
    retried = run_tries(settings, db, dag_file, run_pk, "flaky")
    missing = missing_alerts(db, config, now - timedelta(minutes=5))
    assert sorted((a.event, a.try_number) for a, _ in missing) == [("failed", 2), ("up_for_retry", 1)]
    with db.read_session() as session:
        infos = ended_tries(session, [(retried.ti_id, 1), (retried.ti_id, 2)])
    for one in infos:
        Notifier(db, config).on_try_finished(one)
    with db.session() as session:
        assert sum(write(session, config, alert, when) for alert, when in missing) == 0
    assert len(notifications(db)) == 6
    # The sweep writes what the event path would have: same subject and body.
    by_key = {r.event_key: (r.subject, r.body) for r in notifications(db)}
    for alert, _ in missing:
        assert by_key[f"webhook|{alert.event_key}"] == (alert.subject(), alert.body(config.base_url))


def test_sweep_window_and_cost_when_nothing_to_do(
    settings: Settings, db: Database, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    settings = alert_settings(settings, webhook_url=webhook.url)
    config = AlertConfig.from_settings(settings)
    dag_file, run_pk = new_run(db, tmp_path)
    run_tries(settings, db, dag_file, run_pk, "final")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    # A scheduler started two hours later (lookback one hour) does not reach back to the try.
    late = NotificationSweep(db, config, lookback=3600)
    assert late(datetime.now(UTC) + timedelta(hours=2)) == 0 and count(db) == 0

    sweep = NotificationSweep(db, config, lookback=3600)
    now = datetime.now(UTC)
    assert sweep(now) == 1 and count(db) == 1
    assert sweep.since == now - timedelta(seconds=OVERLAP)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert sweep(now + timedelta(seconds=5)) == 0  # already written: reads only
        reads_with_event = [s for s in statements if s in ("SELECT", "INSERT", "UPDATE", "DELETE")]
        statements.clear()
        assert sweep(now + timedelta(seconds=OVERLAP + 10)) == 0
        assert sweep.since == now + timedelta(seconds=10)  # the next window starts after the try ended
        statements.clear()
        assert sweep(now + timedelta(seconds=OVERLAP + 15)) == 0
        reads_idle = [s for s in statements if s in ("SELECT", "INSERT", "UPDATE", "DELETE")]
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert reads_with_event == ["SELECT", "SELECT", "SELECT"]  # tries, runs, outbox keys
    assert reads_idle == ["SELECT", "SELECT"]  # tries, runs
    assert count(db) == 1


def test_no_channel_configured_no_sweep_and_nothing_written(settings: Settings, db: Database, tmp_path: Path) -> None:
    config = AlertConfig.from_settings(settings)
    assert config.channels == ()
    names = [
        c.name
        for c in housekeeping.chores(settings, db, heartbeat=lambda _n: 0, renew_lease=lambda _n: 0, cache=DagCache())
    ]
    assert "sweep_alerts" not in names and "find_zombies" in names
    with_channel = alert_settings(settings, webhook_url="http://127.0.0.1:9/hook")
    assert "sweep_alerts" in [
        c.name
        for c in housekeeping.chores(
            with_channel, db, heartbeat=lambda _n: 0, renew_lease=lambda _n: 0, cache=DagCache()
        )
    ]

    dag_file, run_pk = new_run(db, tmp_path)
    run_tries(settings, db, dag_file, run_pk, "flaky")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert NotificationSweep(db, config, lookback=3600)(datetime.now(UTC)) == 0
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements == []
    loop.run(settings, db, make_executor(settings), num_loops=3)
    assert count(db) == 0
