"""``EmailOperator``: send an HTML email, with attachments, from a task (Airflow's SMTP provider operator).

Where it sends: the ``smtp`` connection ``conn_id`` when it exists (Airflow's
fields: host, port, login, password; extras ``from_email``, ``timeout``,
``disable_ssl``, ``disable_tls``, ``subject_template``,
``html_content_template``). When the default ``smtp_default`` does not
exist, the ``[alerts]`` SMTP settings are used (``smtp_host``, ``smtp_port``,
``smtp_user``, ``smtp_password``, ``smtp_starttls``, ``smtp_ssl``, and
``email_from`` as the default sender), so one SMTP set-up serves both alerts
and DAGs. A named connection that does not exist fails the task.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from pathlib import Path
from typing import Any

from headrace.authoring.context import make_jinja_env
from headrace.authoring.secrets import Connection, ConnectionNotFound
from headrace.authoring.task import BaseOperator
from headrace.config import load_settings
from headrace.exceptions import DagDefinitionError, HeadraceError
from headrace.mail import SmtpServer, send_message
from headrace.types import Context

DEFAULT_CONN_ID = "smtp_default"
"""Airflow's default SMTP conn_id; when no such connection exists, ``[alerts]`` is used."""
SMTP_EXTRAS = frozenset(
    {"from_email", "timeout", "disable_ssl", "disable_tls", "subject_template", "html_content_template"}
)
"""The extra fields of an smtp connection headrace uses; others (``retry_limit``, ``ssl_context`` …) are
ignored with a warning naming them."""

log = logging.getLogger(__name__)


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


class EmailOperator(BaseOperator):
    """Send an email (Airflow's ``EmailOperator``); see the module docstring for where it sends.

    ``to``, ``cc``, ``bcc``: an address, a ``,``/``;``-separated string or a
    list. ``subject`` and ``html_content`` may be None when the connection
    names ``subject_template`` / ``html_content_template`` files. ``files``:
    paths of files to attach. Templated: ``to``, ``from_email``, ``subject``,
    ``html_content`` (a value ending in ``.html`` is a template file), ``files``,
    ``cc``, ``bcc``. The task fails when no sender is known, a file is missing
    or the server refuses the message.
    """

    template_fields: Sequence[str] = ("to", "from_email", "subject", "html_content", "files", "cc", "bcc")
    template_ext: Sequence[str] = (".html",)
    ui_color = "#e6faf9"

    def __init__(
        self,
        *,
        to: list[str] | str,
        subject: str | None = None,
        html_content: str | None = None,
        from_email: str | None = None,
        files: list[str] | None = None,
        cc: list[str] | str | None = None,
        bcc: list[str] | str | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        conn_id: str = DEFAULT_CONN_ID,
        custom_headers: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not to:
            raise DagDefinitionError(f"EmailOperator {self.task_id!r}: to must name at least one address")
        self.to = to
        self.subject = subject
        self.html_content = html_content
        self.from_email = from_email
        self.files = list(files or [])
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.conn_id = conn_id
        self.custom_headers = custom_headers

    def _server(self) -> tuple[SmtpServer, Connection | None]:
        try:
            conn = Connection.get(self.conn_id)
        except ConnectionNotFound:
            if self.conn_id != DEFAULT_CONN_ID:
                raise HeadraceError(
                    f"EmailOperator {self.task_id!r}: no connection with conn_id {self.conn_id!r}"
                ) from None
            return SmtpServer.from_settings(load_settings()), None
        ignored = sorted(set(conn.extra_dejson) - SMTP_EXTRAS)
        if ignored:
            log.warning(
                "connection %r: headrace does not use the extra field(s) %s (ignored)", conn.conn_id, ", ".join(ignored)
            )
        return SmtpServer.from_connection(conn), conn

    def _from_template(self, conn: Connection | None, key: str, context: Context) -> str:
        path = conn.extra_dejson.get(key) if conn is not None else None
        if not path:
            field = "subject" if key == "subject_template" else "html_content"
            raise HeadraceError(f"EmailOperator {self.task_id!r}: give {field} or define {key} in the connection")
        text = Path(path).read_text(encoding="utf-8")
        return str(make_jinja_env(self.dag).from_string(text).render(context))

    def execute(self, context: Context) -> None:
        """Build the message and send it in one SMTP session; returns None."""
        server, conn = self._server()
        sender = self.from_email or server.from_email
        if not sender:
            raise HeadraceError(f"EmailOperator {self.task_id!r}: give from_email or define it in the connection")
        subject = self.subject if self.subject is not None else self._from_template(conn, "subject_template", context)
        html = (
            self.html_content
            if self.html_content is not None
            else self._from_template(conn, "html_content_template", context)
        )
        to, cc, bcc = address_list(self.to), address_list(self.cc), address_list(self.bcc)
        message = build_message(
            from_email=sender,
            to=to,
            subject=subject,
            html_content=html,
            files=self.files,
            cc=cc,
            mime_subtype=self.mime_subtype,
            mime_charset=self.mime_charset,
            custom_headers=self.custom_headers,
        )
        where = f"connection {conn.conn_id!r}" if conn is not None else "the [alerts] SMTP settings"
        print(f"Sending email {subject!r} to {', '.join(to + cc + bcc)} via {where}", flush=True)
        send_message(server, message, from_addr=sender, to_addrs=to + cc + bcc)


__all__ = ["DEFAULT_CONN_ID", "EmailOperator", "address_list", "build_message"]
