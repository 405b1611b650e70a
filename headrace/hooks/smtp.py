"""``SmtpHook``: email over SMTP through an ``smtp`` connection (Airflow's SMTP provider hook).

The connection ``smtp_conn_id`` gives the server (Airflow's fields: host,
port, login, password; extras ``from_email``, ``timeout``, ``disable_ssl``,
``disable_tls``, ``subject_template``, ``html_content_template``, ``access_token``
for ``auth_type="oauth2"``). When the
default ``smtp_default`` does not exist, the ``[alerts]`` SMTP settings are
used instead (``email_from`` as the default sender), so one SMTP set-up serves
alerts and DAGs. Extras headrace does not use are logged by name.
"""

from __future__ import annotations

import os
import re
import smtplib
from collections.abc import Iterable, Sequence
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from headrace.authoring.secrets import Connection, ConnectionNotFound
from headrace.config import load_settings
from headrace.exceptions import HeadraceError
from headrace.hooks.base import BaseHook
from headrace.mail import AUTH_TYPES, SmtpServer, connect

SMTP_EXTRAS = frozenset(
    {
        "from_email",
        "timeout",
        "disable_ssl",
        "disable_tls",
        "subject_template",
        "html_content_template",
        "access_token",
    }
)
"""The extra fields of an smtp connection headrace uses; others (``retry_limit``, ``ssl_context`` …) are
ignored with a warning naming them."""


def address_list(addresses: str | Iterable[str] | None) -> list[str]:
    """``"a@x, b@y; c@z"`` or an iterable of addresses → a list (None → ``[]``).

    Raises ``TypeError`` for an item that is not a string.
    """
    if addresses is None:
        return []
    if isinstance(addresses, str):
        return [a for a in re.split(r"\s*[,;]\s*", addresses.strip()) if a]
    items = list(addresses)
    if not all(isinstance(a, str) for a in items):
        raise TypeError(f"email addresses must be strings, got {items!r}")
    return items


def build_message(
    *,
    from_email: str,
    to: Sequence[str],
    subject: str,
    html_content: str,
    files: Sequence[str] = (),
    cc: Sequence[str] = (),
    mime_subtype: str = "mixed",
    mime_charset: str = "utf-8",
    custom_headers: dict[str, Any] | None = None,
) -> MIMEMultipart:
    """The MIME message Airflow's SMTP hook builds: a ``multipart/<mime_subtype>`` with the HTML body and
    one ``application/octet-stream`` part per file (``Content-Disposition: attachment``). Bcc is never a
    header. Raises ``OSError`` when a file cannot be read."""
    message = MIMEMultipart(mime_subtype)
    message["Subject"] = subject
    message["From"] = from_email
    message["To"] = ", ".join(to)
    if cc:
        message["CC"] = ", ".join(cc)
    message["Date"] = formatdate(localtime=True)
    message.attach(MIMEText(html_content, "html", mime_charset))
    for name in files:
        base = os.path.basename(name)
        part = MIMEApplication(Path(name).read_bytes(), Name=base)
        part["Content-Disposition"] = f'attachment; filename="{base}"'
        part["Content-ID"] = f"<{base}>"
        message.attach(part)
    for key, value in (custom_headers or {}).items():
        message[key] = value
    return message


class SmtpHook(BaseHook):
    """An SMTP server by connection: ``with SmtpHook("smtp_default") as hook: hook.send_email_smtp(...)``.

    Used without ``with``, each :meth:`send_email_smtp` opens and closes its own session. ``auth_type``
    (Airflow's): ``basic`` (default; AUTH with the connection's login and password when it has a login) or
    ``oauth2`` (AUTH XOAUTH2 with the connection's ``access_token`` extra, as the login, else ``from_email``).
    Raises ``ValueError`` for another ``auth_type``.
    """

    conn_name_attr: ClassVar[str] = "smtp_conn_id"
    default_conn_name: ClassVar[str] = "smtp_default"
    conn_type: ClassVar[str] = "smtp"
    hook_name: ClassVar[str] = "SMTP"

    def __init__(self, smtp_conn_id: str = default_conn_name, auth_type: str = "basic") -> None:
        super().__init__()
        if auth_type not in AUTH_TYPES:
            raise ValueError(f"SmtpHook: auth_type must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
        self.auth_type = auth_type
        self.smtp_conn_id = smtp_conn_id
        self.smtp_connection: Connection | None = None
        """The connection, once read (None: the ``[alerts]`` settings are used)."""
        self.smtp_client: smtplib.SMTP | None = None
        self._server: SmtpServer | None = None

    @property
    def server(self) -> SmtpServer:
        """Where mail goes (read once). Raises ``HeadraceError`` naming a connection that does not exist
        (but for the default ``smtp_default``, which falls back to ``[alerts]``, except with ``oauth2``) or
        that ``auth_type`` cannot use (``oauth2`` without ``access_token``)."""
        if self._server is None:
            try:
                conn = self.get_connection(self.smtp_conn_id)
            except ConnectionNotFound:
                if self.smtp_conn_id != self.default_conn_name:
                    raise HeadraceError(f"SMTP connection {self.smtp_conn_id!r} is not found") from None
                if self.auth_type == "oauth2":
                    raise HeadraceError(
                        f"auth_type 'oauth2' needs the SMTP connection {self.smtp_conn_id!r} with an access_token "
                        "extra; the [alerts] SMTP settings have no token"
                    ) from None
                self._server = SmtpServer.from_settings(load_settings())
            else:
                ignored = sorted(set(conn.extra_dejson) - SMTP_EXTRAS)
                if ignored:
                    self.log.warning(
                        "connection %r: headrace does not use the extra field(s) %s (ignored)",
                        conn.conn_id,
                        ", ".join(ignored),
                    )
                self.smtp_connection = conn
                try:
                    self._server = SmtpServer.from_connection(conn, auth_type=self.auth_type)
                except ValueError as exc:
                    raise HeadraceError(str(exc)) from None
        return self._server

    @property
    def from_email(self) -> str | None:
        """The default sender: the connection's ``from_email`` extra, or ``alerts.email_from``."""
        return self.server.from_email

    def _template(self, key: str) -> str | None:
        self.server  # noqa: B018 - reads the connection
        value = self.smtp_connection.extra_dejson.get(key) if self.smtp_connection is not None else None
        return str(value) if value else None

    @property
    def subject_template(self) -> str | None:
        """Path of the connection's ``subject_template`` file, if any."""
        return self._template("subject_template")

    @property
    def html_content_template(self) -> str | None:
        """Path of the connection's ``html_content_template`` file, if any."""
        return self._template("html_content_template")

    def get_conn(self) -> SmtpHook:
        """Open the SMTP session (TLS, AUTH) if it is not open; returns the hook. Raises ``OSError`` /
        ``smtplib.SMTPException`` when the server cannot be reached or refuses."""
        if self.smtp_client is None:
            self.smtp_client = connect(self.server)
        return self

    def close(self) -> None:
        """Close the session (if open)."""
        if self.smtp_client is not None:
            try:
                self.smtp_client.quit()
            except smtplib.SMTPException:
                self.smtp_client.close()
            self.smtp_client = None

    def __enter__(self) -> SmtpHook:
        return self.get_conn()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send_email_smtp(
        self,
        *,
        to: str | Iterable[str],
        subject: str | None = None,
        html_content: str | None = None,
        from_email: str | None = None,
        files: Sequence[str] | None = None,
        dryrun: bool = False,
        cc: str | Iterable[str] | None = None,
        bcc: str | Iterable[str] | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        custom_headers: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send one HTML email (see :func:`build_message`) to ``to`` + ``cc`` + ``bcc``; ``dryrun`` builds it
        and sends nothing. A missing ``subject`` / ``html_content`` is read from the connection's
        template file. Raises ``HeadraceError`` when no sender, subject or body is known, ``OSError`` /
        ``smtplib.SMTPException`` when sending fails."""
        sender = from_email or self.from_email
        if not sender:
            raise HeadraceError("You should provide `from_email` or define it in the connection.")
        if not subject:
            if self.subject_template is None:
                raise HeadraceError("You should provide `subject` or define `subject_template` in the connection.")
            subject = Path(self.subject_template).read_text(encoding="utf-8")
        if not html_content:
            if self.html_content_template is None:
                raise HeadraceError(
                    "You should provide `html_content` or define `html_content_template` in the connection."
                )
            html_content = Path(self.html_content_template).read_text(encoding="utf-8")
        to_list, cc_list, bcc_list = address_list(to), address_list(cc), address_list(bcc)
        message = build_message(
            from_email=sender,
            to=to_list,
            subject=subject,
            html_content=html_content,
            files=files or (),
            cc=cc_list,
            mime_subtype=mime_subtype,
            mime_charset=mime_charset,
            custom_headers=custom_headers,
        )
        if dryrun:
            return
        recipients = to_list + cc_list + bcc_list
        if self.smtp_client is not None:
            self.smtp_client.send_message(message, from_addr=sender, to_addrs=recipients)
            return
        with connect(self.server) as smtp:
            smtp.send_message(message, from_addr=sender, to_addrs=recipients)


__all__ = ["SMTP_EXTRAS", "SmtpHook", "address_list", "build_message"]
