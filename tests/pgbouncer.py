"""Running a test through PgBouncer as well: ``@WITH_PGBOUNCER`` on a test that takes ``db_url``.

``.ci/run`` starts Debian's PgBouncer on 127.0.0.1:6432 in transaction mode in
front of the shared PostgreSQL server (``HEADRACE_TEST_PGBOUNCER`` names
another). A test decorated with :data:`WITH_PGBOUNCER` runs on SQLite, on
PostgreSQL, and on the same PostgreSQL database reached through PgBouncer
(``db_url`` ends in ``?pgbouncer=true``; see ``headrace.db.engine``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

PG_SERVER = os.environ.get("HEADRACE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
"""The shared PostgreSQL server (as in ``tests/conftest.py``)."""
PGBOUNCER_SERVER = os.environ.get("HEADRACE_TEST_PGBOUNCER", "postgresql+psycopg://postgres@127.0.0.1:6432")
"""PgBouncer in transaction mode in front of ``PG_SERVER``: any database name maps to the same-named one there."""

WITH_PGBOUNCER = pytest.mark.parametrize("db_url", ["sqlite", "postgresql", "postgresql-pgbouncer"], indirect=True)
"""Parametrize ``db_url`` (and the fixtures on it: ``db``, ``settings``) over the three backends."""


def through_pgbouncer(url: str) -> str:
    """``url`` (a database on ``PG_SERVER``) as reached through PgBouncer, marked ``?pgbouncer=true``."""
    if not url.startswith(PG_SERVER + "/"):
        raise ValueError(f"{url} is not a database on {PG_SERVER}")
    return PGBOUNCER_SERVER + url[len(PG_SERVER) :] + "?pgbouncer=true"


class PgBouncerProcess:
    """A private PgBouncer (Debian's binary) in transaction mode, for tests that restart their own server.

    :meth:`start` writes ``base_dir/pgbouncer.ini`` (any database name maps to the same-named database on
    127.0.0.1:``server_port`` as ``postgres``; no authentication) and runs ``pgbouncer -d`` on a free port
    (as the ``postgres`` OS user when the tests run as root; ``base_dir`` must be that user's, as a
    ``PgCluster``'s is). :meth:`stop` ends it. Timeouts in seconds.
    """

    def __init__(self, base_dir: Path, server_port: int) -> None:
        self.base_dir = base_dir
        self.server_port = server_port
        self.port = 0
        self.ini = base_dir / "pgbouncer.ini"
        self.pidfile = base_dir / "pgbouncer.pid"
        self.logfile = base_dir / "pgbouncer.log"

    def start(self, timeout: float = 15) -> None:
        """Start it and wait until it accepts connections; raises ``RuntimeError`` with its log if not."""
        binary = shutil.which("pgbouncer")
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (.ci/run installs Debian's package)")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server_port} user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
            f"server_login_retry = 1\nlogfile = {self.logfile}\npidfile = {self.pidfile}\n"
        )
        cmd = [binary, "-d", str(self.ini)]
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.ini, user.pw_uid, user.pw_gid)
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.base_dir)
        if result.returncode != 0:
            raise RuntimeError(f"pgbouncer failed to start (exit {result.returncode}): {result.stderr}{self.log()}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pgbouncer not listening on {self.port} after {timeout} s:\n{self.log()}"
                    ) from None
                time.sleep(0.05)

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of ``dbname`` through this PgBouncer, marked ``?pgbouncer=true``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}?pgbouncer=true"

    def stop(self) -> None:
        """SIGTERM the PgBouncer this object started (by the pid in its pidfile); a no-op if it is gone."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log(self) -> str:
        """PgBouncer's log ('' if there is none)."""
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""
