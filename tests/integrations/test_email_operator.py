"""EmailOperator through the scheduler, sending to a real SMTP server (aiosmtpd) on loopback.

Through an ``smtp`` connection and, when ``smtp_default`` does not exist, through the ``[alerts]`` settings.
"""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from headrace.authoring.secrets import Connection
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
from headrace.hooks.smtp import address_list
from headrace.logs.files import try_log_path
from tests.hooks.conftest import store_connections
from tests.observability.conftest import run_dag, smtp_server, write_dag  # noqa: F401 - smtp_server is a fixture

DAG = """
from datetime import datetime

from headrace import DAG, task
from headrace.hooks import SmtpHook
from headrace.operators import EmailOperator

with DAG(dag_id="mail", schedule=None, start_date=datetime(2024, 1, 1), params={{"who": "ops"}}):
    EmailOperator(
        task_id="report",
        conn_id="smtp_test",
        to="{{{{ params.who }}}}@example.com; lead@example.com",
        cc=["cc@example.com"],
        bcc="hidden@example.com",
        subject="Report for {{{{ dag.dag_id }}}} ✓",
        html_content="report.html",
        files=["{attachment}"],
        mime_charset="utf-8",
        custom_headers={{"X-Priority": "1"}},  # not a template field (as in Airflow)
    )
    EmailOperator(task_id="via_alerts", to=["alerts@example.com"], subject="plain", html_content="<p>hi</p>")
    EmailOperator(task_id="no_such_conn", conn_id="nope", to="x@example.com", subject="s", html_content="b")

    @task
    def with_the_hook():
        SmtpHook("smtp_test").send_email_smtp(to="dry@example.com", subject="dry", html_content="x", dryrun=True)
        with SmtpHook(smtp_conn_id="smtp_test") as hook:
            for n in (1, 2):
                hook.send_email_smtp(to=["hook@example.com"], subject=f"hook {{n}}", html_content="<b>x</b>")

    with_the_hook()
    EmailOperator(task_id="from_templates", conn_id="smtp_tpl", to="tpl@example.com")  # subject, body: the connection's
"""


def _parse(envelope: Any) -> Message:
    return email.message_from_bytes(envelope.original_content)


def _subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def test_email_operator_sends_through_a_connection_and_the_alerts_settings(
    settings: Settings,
    db: Database,
    tmp_path: Path,
    smtp_server: tuple[int, list[Any]],  # noqa: F811
) -> None:
    port, received = smtp_server
    settings = settings.with_overrides(
        {"alerts": {"smtp_host": "127.0.0.1", "smtp_port": port, "email_from": "headrace@example.com"}}
    )
    store_connections(
        settings,
        db,
        Connection(
            conn_id="smtp_test",
            conn_type="smtp",
            host="127.0.0.1",
            port=port,
            extra={"disable_ssl": True, "disable_tls": True, "from_email": "dags@example.com", "retry_limit": 3},
        ),
    )
    (tmp_path / "subject.txt").write_text("Templated {{ 'mail' }}")
    (tmp_path / "body.html").write_text("<p>{{ run_id }}</p>")
    store_connections(
        settings,
        db,
        Connection(
            conn_id="smtp_tpl",
            conn_type="smtp",
            host="127.0.0.1",
            port=port,
            extra={
                "disable_ssl": "true",
                "disable_tls": "true",
                "from_email": "tpl@example.com",
                "subject_template": str(tmp_path / "subject.txt"),
                "html_content_template": str(tmp_path / "body.html"),
            },
        ),
    )
    attachment = tmp_path / "numbers.csv"
    attachment.write_bytes(b"a,b\n1,2\n")
    write_dag(settings, "mail", DAG.format(attachment=attachment))
    (settings.dags_folder / "report.html").write_text("<h1>Run {{ run_id }}</h1><p>for {{ params.who }}</p>")
    run = run_dag(settings, db, "mail")
    with db.read_session() as session:
        states = {t: str(s) for t, s in session.execute(select(TaskInstance.task_id, TaskInstance.state))}
    assert states == {
        "report": "success",
        "via_alerts": "success",
        "no_such_conn": "failed",
        "with_the_hook": "success",
        "from_templates": "success",
    }
    by_subject = {_subject(_parse(e)): e for e in received}
    assert len(received) == 5  # the dry run sent nothing
    templated = by_subject["Templated mail"]
    assert templated.rcpt_tos == ["tpl@example.com"]
    assert _parse(templated).get_payload()[0].get_payload(decode=True) == f"<p>{run.run_id}</p>".encode()
    assert [by_subject[f"hook {n}"].rcpt_tos for n in (1, 2)] == [["hook@example.com"]] * 2

    envelope = next(e for e in received if e.mail_from == "dags@example.com")
    message = _parse(envelope)
    assert envelope.mail_from == "dags@example.com"  # the connection's from_email
    assert envelope.rcpt_tos == ["ops@example.com", "lead@example.com", "cc@example.com", "hidden@example.com"]
    assert _subject(message) == "Report for mail ✓"
    assert message["From"] == "dags@example.com"
    assert message["To"] == "ops@example.com, lead@example.com"
    assert message["CC"] == "cc@example.com"
    assert message["Bcc"] is None  # never a header
    assert message["X-Priority"] == "1"
    assert message.get_content_type() == "multipart/mixed"
    body, attached = message.get_payload()  # type: ignore[misc]
    assert body.get_content_type() == "text/html"
    assert body.get_content_charset() == "utf-8"
    assert body.get_payload(decode=True).decode() == f"<h1>Run {run.run_id}</h1><p>for ops</p>"
    assert attached.get_filename() == "numbers.csv"
    assert attached.get_payload(decode=True) == b"a,b\n1,2\n"

    plain = _parse(by_subject["plain"])
    assert by_subject["plain"].mail_from == "headrace@example.com"  # alerts.email_from
    assert by_subject["plain"].rcpt_tos == ["alerts@example.com"]
    assert plain.get_payload()[0].get_payload(decode=True) == b"<p>hi</p>"  # type: ignore[index]

    report_log = try_log_path(settings.base_log_folder, "mail", run.run_id, "report", 1).read_text()
    assert "connection 'smtp_test': headrace does not use the extra field(s) retry_limit (ignored)" in report_log
    log = try_log_path(settings.base_log_folder, "mail", run.run_id, "no_such_conn", 1).read_text()
    assert "EmailOperator 'no_such_conn': SMTP connection 'nope' is not found" in log


def test_address_lists_as_airflow_splits_them() -> None:
    assert address_list("a@x, b@y;c@z") == ["a@x", "b@y", "c@z"]
    assert address_list(("a@x",)) == ["a@x"]
    assert address_list(None) == []
    with pytest.raises(TypeError):
        address_list([1])  # type: ignore[list-item]


class _AuthMailbox:
    """An aiosmtpd handler that records AUTH: LOGIN/PLAIN through ``authenticate``, XOAUTH2 as a handler hook."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 — aiosmtpd hook
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, user))
        return AuthResult(success=(user, password) == ("mailer", "s3cret"))

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:  # noqa: N802 — aiosmtpd mechanism hook
        import base64

        from aiosmtpd.smtp import AuthResult

        raw = base64.b64decode(args[1]).decode()
        self.logins.append(("XOAUTH2", raw))
        return AuthResult(success=raw == "user=dags@example.com\x01auth=Bearer tok-123\x01\x01", handled=False)


AUTH_DAG = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmailOperator

with DAG(dag_id="mail_auth", schedule=None, start_date=datetime(2024, 1, 1)):
    EmailOperator(task_id="basic", conn_id="smtp_basic", to="a@example.com", subject="basic", html_content="x")
    EmailOperator(
        task_id="oauth", conn_id="smtp_oauth", auth_type="oauth2", to="b@example.com", subject="oauth", html_content="x"
    )
    EmailOperator(  # no access_token: a one-line error naming the extra
        task_id="no_token", conn_id="smtp_basic", auth_type="oauth2", to="c@example.com", subject="s", html_content="x"
    )
"""


def test_email_operator_auth_types_basic_and_oauth2(settings: Settings, db: Database) -> None:
    """Airflow's auth_type: basic logs in with the connection's login/password; oauth2 sends AUTH XOAUTH2 with the
    connection's access_token for its login, else its from_email (a real aiosmtpd server that checks both)."""
    from aiosmtpd.controller import Controller

    from tests.observability.conftest import free_port

    box = _AuthMailbox()
    controller = Controller(
        box, hostname="127.0.0.1", port=free_port(), auth_require_tls=False, authenticator=box.authenticate
    )
    controller.start()
    try:
        plain = {"disable_ssl": True, "disable_tls": True, "from_email": "dags@example.com"}
        store_connections(
            settings,
            db,
            Connection(
                conn_id="smtp_basic",
                conn_type="smtp",
                host="127.0.0.1",
                port=controller.port,
                login="mailer",
                password="s3cret",
                extra=plain,
            ),
            Connection(
                conn_id="smtp_oauth",
                conn_type="smtp",
                host="127.0.0.1",
                port=controller.port,
                extra={**plain, "access_token": "tok-123"},
            ),
        )
        write_dag(settings, "mail_auth", AUTH_DAG)
        run = run_dag(settings, db, "mail_auth")
    finally:
        controller.stop()
    with db.read_session() as session:
        states = {t: str(s) for t, s in session.execute(select(TaskInstance.task_id, TaskInstance.state))}
    assert states == {"basic": "success", "oauth": "success", "no_token": "failed"}
    assert sorted(_subject(_parse(e)) for e in box.messages) == ["basic", "oauth"]
    assert ("XOAUTH2", "user=dags@example.com\x01auth=Bearer tok-123\x01\x01") in box.logins
    assert any(mech in ("LOGIN", "PLAIN") and user == "mailer" for mech, user in box.logins)
    log = try_log_path(settings.base_log_folder, "mail_auth", run.run_id, "no_token", 1).read_text()
    assert "smtp connection 'smtp_basic': auth_type 'oauth2' needs the extra access_token" in log


def test_an_unknown_auth_type_is_refused_by_name() -> None:
    from headrace import DAG
    from headrace.exceptions import DagDefinitionError
    from headrace.operators import EmailOperator

    with DAG("bad_auth"), pytest.raises(DagDefinitionError, match="auth_type must be one of basic, oauth2, got 'ntlm'"):
        EmailOperator(task_id="t", to="x@example.com", auth_type="ntlm")
