"""What the compatibility suite's integration DAGs (``compat_sql``, ``compat_email``) reach: real servers.

:func:`compat_services` starts an SMTP server (aiosmtpd) on loopback and stores, in the metadata DB under
test, the connections ``compat_postgres`` (the PostgreSQL on this machine, database ``test``),
``compat_mysql`` (the MariaDB, database ``test``) and ``compat_smtp``, and the variable
``compat_sql_table``: a table name of this run's own, so parallel runs never share a table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller

from headrace.authoring.secrets import Connection
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.secrets_store import set_connection, set_variable
from tests.hooks.conftest import MARIADB, POSTGRES, drop_table
from tests.observability.conftest import _Mailbox, free_port


@contextmanager
def compat_services(settings: Settings, db: Database) -> Iterator[list[Any]]:
    """Start the SMTP server and store the connections and variable; yield the envelopes received."""
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    table = f"compat_{uuid.uuid4().hex[:12]}"
    smtp = Connection(
        conn_id="compat_smtp",
        conn_type="smtp",
        host="127.0.0.1",
        port=controller.port,
        extra={"disable_ssl": True, "disable_tls": True, "from_email": "compat@example.com"},
    )
    encryptor = Encryptor.from_settings(settings)
    with db.session() as session:
        for conn in (POSTGRES, MARIADB):
            set_connection(session, encryptor, Connection(**{**conn.to_dict(), "conn_id": f"compat_{conn.conn_type}"}))
        set_connection(session, encryptor, smtp)
        set_variable(session, encryptor, "compat_sql_table", table)
    try:
        yield box.messages
    finally:
        controller.stop()
        for conn in (POSTGRES, MARIADB):
            drop_table(conn, table)
