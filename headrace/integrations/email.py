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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headrace.authoring.context import make_jinja_env
from headrace.authoring.task import BaseOperator
from headrace.exceptions import DagDefinitionError, HeadraceError
from headrace.hooks.smtp import SmtpHook
from headrace.mail import AUTH_TYPES
from headrace.types import Context

DEFAULT_CONN_ID = SmtpHook.default_conn_name
"""Airflow's default SMTP conn_id; when no such connection exists, ``[alerts]`` is used."""


class EmailOperator(BaseOperator):
    """Send an email (Airflow's ``EmailOperator``) with :class:`~headrace.hooks.smtp.SmtpHook`; see the module
    docstring for where it sends.

    ``to``, ``cc``, ``bcc``: an address, a ``,``/``;``-separated string or a
    list. ``subject`` and ``html_content`` may be None when the connection
    names ``subject_template`` / ``html_content_template`` files (rendered as
    templates). ``files``: paths of files to attach. Templated: ``to``,
    ``from_email``, ``subject``, ``html_content`` (a value ending in ``.html`` is
    a template file), ``files``, ``cc``, ``bcc``. ``auth_type``: ``basic`` (default) or ``oauth2`` (the
    connection's ``access_token`` extra; see :class:`~headrace.hooks.smtp.SmtpHook`). The task fails when the named
    connection does not exist, no sender is known, a file is missing or the
    server refuses the message.
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
        auth_type: str = "basic",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if auth_type not in AUTH_TYPES:
            raise DagDefinitionError(
                f"EmailOperator {self.task_id!r}: auth_type must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}"
            )
        self.auth_type = auth_type
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

    def _from_template(self, path: str | None, field: str, context: Context) -> str:
        if not path:
            key = f"{field}_template"
            raise HeadraceError(f"EmailOperator {self.task_id!r}: give {field} or define {key} in the connection")
        text = Path(path).read_text(encoding="utf-8")
        return str(make_jinja_env(self.dag).from_string(text).render(context))

    def execute(self, context: Context) -> None:
        """Send the message in one SMTP session; returns None."""
        hook = SmtpHook(smtp_conn_id=self.conn_id, auth_type=self.auth_type)
        try:
            server = hook.server
        except HeadraceError as exc:
            raise HeadraceError(f"EmailOperator {self.task_id!r}: {exc}") from None
        sender = self.from_email or hook.from_email
        if not sender:
            raise HeadraceError(f"EmailOperator {self.task_id!r}: give from_email or define it in the connection")
        subject = self.subject
        if subject is None:
            subject = self._from_template(hook.subject_template, "subject", context)
        html = self.html_content
        if html is None:
            html = self._from_template(hook.html_content_template, "html_content", context)
        where = f"connection {self.conn_id!r}" if hook.smtp_connection is not None else "the [alerts] SMTP settings"
        print(f"Sending email {subject!r} via {where} ({server.host}:{server.port or 'default port'})", flush=True)
        hook.send_email_smtp(
            to=self.to,
            subject=subject,
            html_content=html,
            from_email=sender,
            files=self.files,
            cc=self.cc,
            bcc=self.bcc,
            mime_subtype=self.mime_subtype,
            mime_charset=self.mime_charset,
            custom_headers=self.custom_headers,
        )


__all__ = ["DEFAULT_CONN_ID", "EmailOperator"]
