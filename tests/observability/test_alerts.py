"""Alerts: callbacks at DAG and task level, and notifiers (real SMTP server, real HTTP receiver on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Notification
from headrace.executors import make_executor
from headrace.observability.delivery import MAX_ATTEMPTS, DeliveryConfig, deliver_pending, pending
from headrace.observability.listener import TryInfo
from headrace.observability.notifications import Alert, AlertConfig, Notifier, write
from headrace.scheduler import loop
from tests.waiting import wait_until

from .conftest import WebhookReceiver, run_dag, write_dag

FLAKY = """
    from datetime import timedelta
    from headrace import DAG
    from headrace.operators import PythonOperator

    def always_fails():
        raise RuntimeError("disk full")

    with DAG("alerting"):
        PythonOperator(task_id="flaky", python_callable=always_fails, retries=1, retry_delay=timedelta(0))
"""


def alert_settings(settings: Settings, *, smtp_port: int = 25, webhook_url: str = "", email_to: str = "") -> Settings:
    return settings.with_overrides(
        {
            "alerts": {
                "email_to": email_to,
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "webhook_url": webhook_url,
                "notify_on": "failed,up_for_retry,run_failed,deadline_missed",
                "timeout": 10,
            },
            "api": {"base_url": "http://headrace.example"},
        }
    )


def count(db: Database, *where: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Notification).where(*where)) or 0)


def test_failures_notify_by_email_and_webhook_exactly_once(
    settings: Settings, db: Database, smtp_server: tuple[int, list[Any]], webhook: WebhookReceiver
) -> None:
    port, mails = smtp_server
    settings = alert_settings(settings, smtp_port=port, webhook_url=webhook.url, email_to="ops@example.com")
    write_dag(settings, "alerting", FLAKY)
    # try 1 up_for_retry, try 2 failed, run failed: 3 events x 2 channels, each sent by the delivery thread
    run = run_dag(settings, db, "alerting", until=lambda: count(db, Notification.sent_at.is_not(None)) == 6)
    assert run.state == "failed"
    assert count(db) == 6
    parsed = [message_from_bytes(m.content, policy=policy.default) for m in mails]
    subjects = sorted(str(p["Subject"]) for p in parsed)
    assert subjects == [
        f"[headrace] failed: alerting.flaky (run {run.run_id}, try 2)",
        f"[headrace] run_failed: DAG alerting (run {run.run_id})",
        f"[headrace] up_for_retry: alerting.flaky (run {run.run_id}, try 1)",
    ]
    assert all(m.rcpt_tos == ["ops@example.com"] for m in mails)
    failed_mail = next(p.get_content() for p in parsed if "] failed:" in str(p["Subject"]))
    assert "Error: RuntimeError: disk full" in failed_mail
    assert f"http://headrace.example/dags/alerting/runs/{quote(run.run_id, safe='')}/tasks/flaky" in failed_mail
    texts = [b["text"] for b in webhook.bodies]
    assert len(texts) == 3 and all("alerting" in t for t in texts)
    assert sum("alerting.flaky" in t and "try 2" in t for t in texts) == 1
    assert all(b["blocks"][0]["type"] == "header" for b in webhook.bodies)

    # The same event seen again (a second scheduler, a re-read) writes nothing new.
    config = AlertConfig.from_settings(settings)
    Notifier(db, config).on_try_finished(
        TryInfo(
            dag_id="alerting",
            task_id="flaky",
            run_id=run.run_id,
            try_number=2,
            state="failed",
            end_reason="exception",
            queued_at=None,
            start_date=None,
            end_date=datetime.now(UTC),
            peak_rss_bytes=None,
            cpu_seconds=None,
        )
    )
    # A restarted scheduler (with its delivery thread) sends nothing twice.
    loop.run(settings, db, make_executor(settings), num_loops=3)
    assert count(db) == 6
    assert len(mails) == 3 and len(webhook.bodies) == 3


def test_delivery_retries_with_backoff_then_gives_up(
    settings: Settings, db: Database, webhook: WebhookReceiver
) -> None:
    settings = alert_settings(settings, webhook_url=webhook.url)
    config, delivery = AlertConfig.from_settings(settings), DeliveryConfig.from_settings(settings)
    now = datetime.now(UTC)
    with db.session() as session:
        assert (
            write(session, config, Alert(event="failed", dag_id="d", run_id="r", task_id="t", try_number=1), now) == 1
        )
        assert write(session, config, Alert(event="run_failed", dag_id="d", run_id="r2"), now) == 1
        assert write(session, config, Alert(event="run_failed", dag_id="d", run_id="r2"), now) == 0  # once
    webhook.statuses = [500, 503]  # the first two POSTs fail
    assert deliver_pending(db, delivery, now) == 0
    with db.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        assert [r.attempts for r in rows] == [1, 1]
        assert "500" in (rows[0].last_error or "") and "503" in (rows[1].last_error or "")
    assert pending(db, now) == []  # backing off
    later = datetime.now(UTC) + timedelta(seconds=3)
    assert deliver_pending(db, delivery, later) == 2
    assert len(webhook.bodies) == 2 and count(db, Notification.sent_at.is_(None)) == 0

    with db.session() as session:
        write(session, config, Alert(event="failed", dag_id="d", run_id="r3", task_id="t", try_number=1), now)
    webhook.statuses = [500] * MAX_ATTEMPTS
    when = now
    for _ in range(MAX_ATTEMPTS + 2):
        deliver_pending(db, delivery, when)
        when += timedelta(minutes=10)
    with db.session() as session:
        row = session.scalars(select(Notification).where(Notification.run_id == "r3")).one()
        assert row.attempts == MAX_ATTEMPTS and row.sent_at is None and "500" in (row.last_error or "")
    assert pending(db, when) == []


def test_no_channel_configured_writes_nothing(settings: Settings, db: Database) -> None:
    config = AlertConfig.from_settings(settings)
    assert config.channels == ()
    with db.session() as session:
        assert write(session, config, Alert(event="failed", dag_id="d"), datetime.now(UTC)) == 0


def test_task_callbacks_from_default_args_and_dag_callbacks(settings: Settings, db: Database, tmp_path: Path) -> None:
    out = tmp_path / "calls.txt"
    write_dag(
        settings,
        "callbacks",
        f"""
        from datetime import timedelta
        from headrace import DAG
        from headrace.operators import PythonOperator

        def record(kind):
            def callback(context):
                with open({str(out)!r}, "a") as f:
                    ti = context.get("ti")
                    who = f"{{ti.task_id}}:{{ti.try_number}}" if ti is not None else context["run_id"][:6]
                    f.write(f"{{kind}} {{who}}\\n")
            return callback

        def fail():
            raise RuntimeError("no")

        with DAG("callbacks", on_failure_callback=record("dag_failure"),
                 default_args={{"on_failure_callback": record("failure"), "on_retry_callback": record("retry"),
                                "on_success_callback": record("success"), "retry_delay": timedelta(0)}}):
            PythonOperator(task_id="ok", python_callable=lambda: 1)
            PythonOperator(task_id="flaky", python_callable=fail, retries=1)
    """,
    )
    assert run_dag(settings, db, "callbacks").state == "failed"
    lines = wait_until(
        lambda: out.exists() and len(out.read_text().splitlines()) == 4 and sorted(out.read_text().splitlines()),
        30,
        "the four callbacks' lines",
    )
    assert lines == ["dag_failure manual", "failure flaky:2", "retry flaky:1", "success ok:1"]


MAPPED_FAILS = """
    from headrace import DAG, task

    @task
    def check(n):
        if n % 2:
            raise RuntimeError(f"odd {n}")
        return n

    with DAG("mapped_alerts"):
        check.expand(n=[0, 1, 2, 3])
"""


def test_each_failing_index_of_a_mapped_task_alerts(settings: Settings, db: Database, webhook: WebhookReceiver) -> None:
    """Indices 1 and 3 fail on their first try: two ``failed`` alerts (keyed per map index), each naming its
    index and linking to its page; a second sight of the same event writes nothing."""
    settings = alert_settings(settings, webhook_url=webhook.url)
    write_dag(settings, "mapped_alerts", MAPPED_FAILS)
    run = run_dag(settings, db, "mapped_alerts", until=lambda: count(db, Notification.sent_at.is_not(None)) == 3)
    assert run.state == "failed"
    with db.session() as session:
        keys = sorted(session.scalars(select(Notification.event_key).where(Notification.event == "failed")))
    assert keys == [f"webhook|failed|mapped_alerts|{run.run_id}|check|1|{i}" for i in (1, 3)]
    texts = sorted(b["text"] for b in webhook.bodies if "] failed:" in b["text"])
    assert [t.splitlines()[0] for t in texts] == [
        f"[headrace] failed: mapped_alerts.check[{i}] (run {run.run_id}, try 1)" for i in (1, 3)
    ]
    assert "Map index: 1" in texts[0] and "Error: RuntimeError: odd 1" in texts[0]
    assert f"/runs/{quote(run.run_id, safe='')}/tasks/check?map_index=3" in texts[1]

    config = AlertConfig.from_settings(settings)
    seen_again = TryInfo(
        dag_id="mapped_alerts",
        task_id="check",
        run_id=run.run_id,
        try_number=1,
        state="failed",
        end_reason="exception",
        queued_at=None,
        start_date=None,
        end_date=datetime.now(UTC),
        peak_rss_bytes=None,
        cpu_seconds=None,
        map_index=3,
    )
    Notifier(db, config).on_try_finished(seen_again)
    assert count(db, Notification.event == "failed") == 2


def test_delivery_reads_the_smtp_keys_through_smtp_server_from_settings(settings: Settings) -> None:
    """One reader of the [alerts] SMTP keys: DeliveryConfig holds SmtpServer.from_settings(settings)."""
    from headrace.mail import SmtpServer

    settings = settings.with_overrides(
        {
            "alerts": {
                "smtp_host": "mail.example.com",
                "smtp_port": 2525,
                "smtp_user": "alerts",
                "smtp_password": "pw",
                "smtp_starttls": True,
                "email_from": "hr@example.com",
                "email_to": "a@example.com, b@example.com",
                "timeout": 7,
            }
        }
    )
    config = DeliveryConfig.from_settings(settings)
    assert config.smtp == SmtpServer.from_settings(settings)
    assert (config.smtp.host, config.smtp.port, config.smtp.user, config.smtp.starttls) == (
        "mail.example.com",
        2525,
        "alerts",
        True,
    )
    assert (config.email_from, config.timeout, config.email_to) == (
        "hr@example.com",
        7.0,
        ("a@example.com", "b@example.com"),
    )
