"""Sending email over SMTP: one place for alert delivery and the ``EmailOperator``.

:class:`SmtpServer` says how to reach the server (host, port, TLS, login);
it is built from the ``[alerts]`` settings (:meth:`SmtpServer.from_settings`)
or from an ``smtp`` connection (:meth:`SmtpServer.from_connection`, Airflow's
SMTP connection fields). :func:`send_message` opens one SMTP session, sends one
message to its recipients and closes the session.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from headrace.authoring.secrets import Connection
from headrace.config import Settings

AUTH_TYPES = ("basic", "oauth2")
"""Airflow's SMTP ``auth_type`` values."""


def _flag(extra: dict[str, Any], key: str) -> bool:
    value = extra.get(key, False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class SmtpServer:
    """How to reach an SMTP server."""

    host: str
    port: int
    """TCP port; 0 means smtplib's default (25, or 465 with ``ssl``)."""
    user: str = ""
    """Login for AUTH; empty: no AUTH."""
    password: str = field(default="", repr=False)
    starttls: bool = False
    """Upgrade the plain connection with STARTTLS (ignored with ``ssl``)."""
    ssl: bool = False
    """Connect over TLS from the start (SMTPS)."""
    timeout: float = 30.0
    """Seconds the session may wait on the server."""
    from_email: str | None = None
    """Default sender, when the caller gives none."""
    auth_type: str = "basic"
    """Airflow's ``auth_type``: ``basic`` (AUTH with ``user`` / ``password`` when a user is set) or ``oauth2``
    (AUTH XOAUTH2 with ``access_token`` for ``user``, else ``from_email``)."""
    access_token: str = field(default="", repr=False)
    """The OAuth2 bearer token for ``auth_type="oauth2"``."""

    def __post_init__(self) -> None:
        if self.auth_type not in AUTH_TYPES:
            raise ValueError(f"SMTP auth_type must be one of {', '.join(AUTH_TYPES)}, got {self.auth_type!r}")
        if self.auth_type == "oauth2" and not self.access_token:
            raise ValueError("SMTP auth_type 'oauth2' needs an access_token")
        if self.auth_type == "oauth2" and not (self.user or self.from_email):
            raise ValueError("SMTP auth_type 'oauth2' needs a login or a from_email to authenticate as")

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpServer:
        """The ``[alerts]`` section: ``smtp_host``, ``smtp_port``, ``smtp_user``, ``smtp_password``,
        ``smtp_starttls``, ``smtp_ssl``, ``timeout`` and ``email_from`` (the default sender)."""
        return cls(
            host=settings.get_str("alerts", "smtp_host"),
            port=settings.get_int("alerts", "smtp_port"),
            user=settings.get_str("alerts", "smtp_user"),
            password=settings.get_str("alerts", "smtp_password"),
            starttls=settings.get_bool("alerts", "smtp_starttls"),
            ssl=settings.get_bool("alerts", "smtp_ssl"),
            timeout=settings.get_float("alerts", "timeout"),
            from_email=settings.get_str("alerts", "email_from") or None,
        )

    @classmethod
    def from_connection(cls, conn: Connection, *, auth_type: str = "basic") -> SmtpServer:
        """An Airflow-style ``smtp`` connection: ``host``, ``port``, ``login``, ``password`` and the extras
        ``from_email``, ``timeout`` (s, default 30), ``disable_ssl`` and ``disable_tls`` (both default false,
        as in Airflow: SMTPS unless ``disable_ssl``; STARTTLS on a plain connection unless ``disable_tls``).
        With ``auth_type="oauth2"`` the extra ``access_token`` is the bearer token (Airflow's field).

        Raises ``ValueError`` naming the connection when it has no host, a bad timeout, or for ``oauth2`` no
        ``access_token`` (obtaining one with ``client_id`` / ``client_secret`` / ``tenant_id``, as Airflow can
        for Microsoft 365, is not supported).
        """
        extra = conn.extra_dejson
        if not conn.host:
            raise ValueError(f"smtp connection {conn.conn_id!r} has no host")
        try:
            timeout = float(extra.get("timeout", 30))
        except (TypeError, ValueError):
            raise ValueError(
                f"smtp connection {conn.conn_id!r}: extra timeout must be a number, got {extra['timeout']!r}"
            ) from None
        token = str(extra.get("access_token") or "")
        if auth_type == "oauth2" and not token:
            raise ValueError(
                f"smtp connection {conn.conn_id!r}: auth_type 'oauth2' needs the extra access_token (headrace does "
                "not obtain tokens from client_id / client_secret / tenant_id)"
            )
        try:
            return cls(
                host=conn.host,
                port=conn.port or 0,
                user=conn.login or "",
                password=conn.password or "",
                ssl=not _flag(extra, "disable_ssl"),
                starttls=not _flag(extra, "disable_tls"),
                timeout=timeout,
                from_email=extra.get("from_email") or None,
                auth_type=auth_type,
                access_token=token,
            )
        except ValueError as exc:
            raise ValueError(f"smtp connection {conn.conn_id!r}: {exc}") from None


def connect(server: SmtpServer) -> smtplib.SMTP:
    """An open SMTP session on ``server`` (TLS and AUTH done); the caller closes it (``quit()`` or ``with``).

    Raises ``OSError`` (cannot connect, timeout) or ``smtplib.SMTPException`` (TLS or AUTH refused).
    """
    smtp: smtplib.SMTP
    if server.ssl:
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    try:
        if server.starttls and not server.ssl:
            smtp.starttls(context=ssl.create_default_context())
        if server.auth_type == "oauth2":
            identity = server.user or server.from_email
            response = f"user={identity}\x01auth=Bearer {server.access_token}\x01\x01"
            smtp.ehlo_or_helo_if_needed()
            smtp.auth("XOAUTH2", lambda challenge=None: response, initial_response_ok=True)
        elif server.user:
            smtp.login(server.user, server.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_message(
    server: SmtpServer, message: Message, *, from_addr: str | None = None, to_addrs: Sequence[str] | None = None
) -> None:
    """Send ``message`` in one SMTP session (see :func:`connect`).

    ``from_addr`` / ``to_addrs`` are the envelope (default: the message's
    From and To/Cc/Bcc headers, as :meth:`smtplib.SMTP.send_message` reads
    them); pass ``to_addrs`` to reach Bcc recipients that are not in a header.
    Raises ``OSError`` (cannot connect, timeout) or ``smtplib.SMTPException``
    (refused, AUTH failed).
    """
    with connect(server) as smtp:
        smtp.send_message(message, from_addr=from_addr, to_addrs=list(to_addrs) if to_addrs is not None else None)


__all__ = ["AUTH_TYPES", "SmtpServer", "connect", "send_message"]
