"""SmtpServer from the [alerts] settings and from an Airflow-style smtp connection."""

from __future__ import annotations

import pytest

from headrace.authoring.secrets import Connection
from headrace.config import load_settings
from headrace.mail import SmtpServer


def test_a_connection_uses_smtps_unless_disabled_as_airflow_does() -> None:
    conn = Connection(conn_id="mail", conn_type="smtp", host="smtp.example", port=465, login="u", password="p")
    server = SmtpServer.from_connection(conn)
    assert (server.host, server.port, server.user, server.password) == ("smtp.example", 465, "u", "p")
    assert server.ssl and server.timeout == 30.0 and server.from_email is None
    plain = Connection(
        conn_id="mail",
        conn_type="smtp",
        host="h",
        extra={"disable_ssl": "true", "disable_tls": False, "timeout": "5", "from_email": "a@example.com"},
    )
    server = SmtpServer.from_connection(plain)
    assert (server.ssl, server.starttls, server.timeout, server.port) == (False, True, 5.0, 0)
    assert server.from_email == "a@example.com"


def test_bad_connections_are_named() -> None:
    with pytest.raises(ValueError, match="smtp connection 'm' has no host"):
        SmtpServer.from_connection(Connection(conn_id="m", conn_type="smtp"))
    with pytest.raises(ValueError, match="smtp connection 'm': extra timeout must be a number"):
        SmtpServer.from_connection(Connection(conn_id="m", conn_type="smtp", host="h", extra={"timeout": "soon"}))


def test_the_alerts_settings() -> None:
    settings = load_settings(
        {
            "HEADRACE_HOME": "/nonexistent",
            "HEADRACE__ALERTS__SMTP_HOST": "mx",
            "HEADRACE__ALERTS__SMTP_PORT": "2525",
            "HEADRACE__ALERTS__SMTP_STARTTLS": "true",
            "HEADRACE__ALERTS__EMAIL_FROM": "hr@example.com",
        }
    )
    server = SmtpServer.from_settings(settings)
    assert (server.host, server.port, server.starttls, server.ssl) == ("mx", 2525, True, False)
    assert server.from_email == "hr@example.com"
