"""A private, throw-away PostgreSQL cluster for fault tests.

Fault tests stop, restart and crash PostgreSQL, so they must never use the
shared server at 127.0.0.1:5432. ``PgCluster.create(base_dir)`` runs
``initdb`` into ``base_dir/data`` and configures the cluster for speed, not
durability (``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``,
``initdb --no-sync``): it listens on 127.0.0.1 only, on its own port, with its
Unix socket in ``base_dir``, and trusts every local connection as ``postgres``.

PostgreSQL refuses to run as root, so when the tests run as root every server
binary runs as the ``postgres`` OS user (``runuser -u postgres --``); then
``base_dir`` must be reachable by that user (every parent directory
traversable) — a fresh ``tempfile.mkdtemp(dir="/tmp")`` is (pytest's own
``tmp_path`` under ``/tmp/pytest-of-root`` is not: that directory is mode 0700).

All timeouts are in seconds.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

PG_OS_USER = "postgres"
"""The OS user the server runs as when the tests run as root."""

_ADDRESS = "127.0.0.1"

PG_FAULT_LOCK = Path("/tmp/headrace-pg-fault.lock")
"""The inter-process lock the tests that take PostgreSQL away hold meanwhile (the ``pg_fault_lock`` fixture)."""


def find_bindir() -> Path:
    """The directory of the PostgreSQL server binaries (``initdb``, ``pg_ctl``, ...).

    ``pg_config --bindir`` when it names a directory that has ``initdb`` (on
    Debian ``pg_config`` comes with libpq and may name a version whose server is
    not installed), else the highest ``/usr/lib/postgresql/<version>/bin``.
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10)
        except (subprocess.SubprocessError, OSError):
            pass
        else:
            bindir = Path(out.stdout.strip())
            if (bindir / "initdb").is_file():
                return bindir
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()]
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/*/bin)")

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    return max(candidates, key=version)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_ADDRESS, 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One private PostgreSQL cluster: ``base_dir/data`` (PGDATA), ``base_dir/postgres.log``
    (the server log) and the Unix socket in ``base_dir``.

    Make it with :meth:`create` (which does not start it), then :meth:`start`;
    :meth:`destroy` stops it and deletes ``base_dir``.
    """

    def __init__(self, base_dir: Path, port: int, bindir: Path, *, auto_port: bool = False) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_file = base_dir / "postgres.log"
        self.port = port
        self.bindir = bindir
        self._auto_port = auto_port  # the port was picked by us: start() may pick another if it is taken

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(cls, base_dir: Path, port: int | None = None) -> PgCluster:
        """``initdb`` a new cluster in ``base_dir/data`` and configure it; it is not started.

        ``base_dir`` is created if missing (it must be empty, or hold no ``data``).
        ``port``: the TCP port on 127.0.0.1; None picks a free one. Takes about
        a second. Raises ``RuntimeError`` with initdb's output when it fails.
        """
        base_dir = Path(base_dir).resolve()
        base_dir.mkdir(parents=True, exist_ok=True)
        cluster = cls(base_dir, port if port is not None else free_port(), find_bindir(), auto_port=port is None)
        if _as_root():
            user = pwd.getpwnam(PG_OS_USER)
            os.chown(base_dir, user.pw_uid, user.pw_gid)
            _make_traversable(base_dir.parent)
        base_dir.chmod(0o700)
        result = cluster._run(
            "initdb",
            "-D",
            str(cluster.data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {result.returncode}) in {cluster.data_dir}:\n{result.stdout}{result.stderr}"
            )
        cluster._write_config()
        return cluster

    def _write_config(self) -> None:
        """(Re)write the settings headrace's fault tests need into ``postgresql.auto.conf``."""
        settings = {
            "port": str(self.port),
            "listen_addresses": f"'{_ADDRESS}'",
            "unix_socket_directories": f"'{self.base_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        # postgresql.auto.conf is read last (it is what ALTER SYSTEM writes), so it wins over postgresql.conf.
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "postgresql.auto.conf").write_text(text)

    # ------------------------------------------------------------------ server control

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until it accepts connections (at most ``timeout`` seconds).

        A no-op if it is already running. If the port was auto-picked and
        another process took it meanwhile, picks a new one (``self.port`` and
        :meth:`url` change). Raises ``RuntimeError`` with the server log's tail on failure.
        """
        if self.is_running():
            return
        for _attempt in range(3):
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            result = self._pg_ctl("start", "-t", str(int(max(timeout, 1))), timeout=timeout + 10)
            if result.returncode == 0:
                self.wait_ready(timeout)
                return
            log = self._log_since(log_offset)
            if self._auto_port and "could not bind" in log:
                self.port = free_port()
                self._write_config()
                continue
            break
        raise RuntimeError(
            f"pg_ctl start failed (exit {result.returncode}) for {self.data_dir}:\n"
            f"{result.stdout}{result.stderr}\n--- {self.log_file} (tail) ---\n{self.log_tail()}"
        )

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the server (``mode``: "smart", "fast" or "immediate") and wait for it to exit.

        "fast" rolls back open transactions and disconnects clients; "immediate"
        is a crash (recovery runs at the next start). A no-op if it is not
        running. ``timeout`` in seconds. Raises ``RuntimeError`` on failure.
        """
        if not self.is_running():
            return
        result = self._pg_ctl("stop", "-m", mode, "-t", str(int(max(timeout, 1))), timeout=timeout + 10)
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl stop -m {mode} failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- log tail ---\n{self.log_tail()}"
            )

    def restart(self, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the server with ``mode`` (see :meth:`stop`), start it again and wait until it is ready.

        Every existing client connection is dropped. ``timeout`` (seconds) applies to each half.
        """
        self.stop(mode, timeout=timeout)
        self.start(timeout=timeout)

    def is_running(self) -> bool:
        """True when a postmaster runs on ``data_dir`` (``pg_ctl status``), ready or not."""
        return self._pg_ctl("status", use_log=False, timeout=10).returncode == 0

    def is_ready(self) -> bool:
        """True when the server accepts connections on 127.0.0.1:``port`` (``pg_isready``)."""
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", _ADDRESS, "-p", str(self.port), "-t", "2", "-q"],
            capture_output=True,
            timeout=10,
        )
        return result.returncode == 0

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait at most ``timeout`` seconds for :meth:`is_ready`; raise ``RuntimeError`` with the log tail if not."""
        deadline = time.monotonic() + timeout
        while True:
            if self.is_ready():
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"PostgreSQL on port {self.port} not ready after {timeout} s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------ databases

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on this cluster (psycopg 3 driver, over TCP)."""
        return f"postgresql+psycopg://postgres@{_ADDRESS}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq DSN of database ``dbname`` (for ``psycopg.connect``)."""
        return f"postgresql://postgres@{_ADDRESS}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (the server must be running); return its :meth:`url`."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its clients."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ------------------------------------------------------------------ teardown

    def destroy(self) -> None:
        """Stop the server (mode "immediate": nothing of it needs to survive) and delete ``base_dir``."""
        try:
            if self.data_dir.exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log ('' if there is none)."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __repr__(self) -> str:
        return f"PgCluster(base_dir={str(self.base_dir)!r}, port={self.port})"

    # ------------------------------------------------------------------ helpers

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def _pg_ctl(
        self, action: str, *args: str, use_log: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        extra = ["-l", str(self.log_file)] if use_log and action in ("start", "restart") else []
        wait = ["-w"] if action in ("start", "stop", "restart") else []
        return self._run("pg_ctl", action, "-D", str(self.data_dir), *wait, *extra, *args, timeout=timeout)

    def _run(self, binary: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary (as ``postgres`` when we are root) in ``base_dir``."""
        cmd = [str(self.bindir / binary), *args]
        if _as_root():
            cmd = ["runuser", "-u", PG_OS_USER, "--", *cmd]
        # Our PG* variables (PGHOST, PGPORT, PGDATA, ...) must not redirect the cluster's tools.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # cwd: the postgres user cannot read root's working directory (initdb/pg_ctl would warn or fail).
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=self.base_dir, env=env, stdin=subprocess.DEVNULL
        )


def _as_root() -> bool:
    return os.geteuid() == 0


def _make_traversable(path: Path) -> None:
    """Give "others" search (x) permission on ``path`` and each parent, so the postgres user can reach below it."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod((mode & 0o7777) | 0o001)
