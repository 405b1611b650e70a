"""Test hosts on one machine: network namespaces, each with its own hostname, reaching the services over a veth.

``Hosts(["host-a", "host-b"], ports=[5432, 6379])`` (a context manager) makes,
for each name, a network namespace ``hr-<name>-<k>-<owner pid>`` and a veth pair:
``hr<k>`` in the root namespace with ``10.231.<k>.1/30``, ``hr<k>n`` inside with
``10.231.<k>.2/30``, and the namespace's loopback. The namespace has no route
but that /30, so its processes reach only the root end of their veth (and their
own loopback): traffic stays on those private addresses of this machine.

The services (PostgreSQL, Redis, RabbitMQ, private or shared) listen on
127.0.0.1 only. For every forwarded port, a ``socat`` in the root namespace
listens on ``10.231.<k>.1:<port>`` and forwards each connection to
``127.0.0.1:<port>`` (a process per connection, so a server restart closes the
host's connections as it would across a network). ``Host.url(url)`` rewrites a
``127.0.0.1`` / ``localhost`` URL to that address.

A process runs "on" a host through ``Host.command(argv)``: ``ip netns exec``
into its namespace, then ``unshare --uts`` and ``hostname <name>``, so
``socket.gethostname()`` there is the host's name. Processes keep the root PID
namespace: the pids a supervisor records are the true ones. ``Host.kill()``
SIGKILLs every process in the namespace (a host lost at once).

``close()`` kills the namespaces' processes and forwarders and deletes the
namespaces and veths. Namespaces whose owner process is gone (a run that was
killed) are deleted by the next ``Hosts`` made on the machine. Addresses are
handed out under a file lock, so pytest-xdist workers never share one.

Needs root (``ip netns``), ``unshare`` and ``socat`` (``.ci/run`` installs it);
:func:`unavailable` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

SUBNET = "10.231"
"""The /16 the hosts' /30s are taken from (10.231.<k>.0/30, k = 1…250)."""

LOCK = Path("/tmp/headrace-hosts.lock")
"""The file lock under which namespaces are made and stale ones deleted."""

_NETNS = re.compile(r"^hr-(?P<name>.+)-(?P<k>\d+)-(?P<owner>\d+)$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why test hosts cannot be made here (None: they can): not root, no ``ip``/``unshare``/``socat``, or
    ``ip netns add`` refused."""
    if os.geteuid() != 0:
        return "test hosts need root (ip netns, veth)"
    for tool in ("ip", "unshare", "socat"):
        if shutil.which(tool) is None:
            return f"test hosts need {tool!r} on PATH (.ci/run installs socat)"
    probe = f"hr-probe-0-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One test host: a network namespace with its own hostname."""

    name: str
    """Its hostname (what ``socket.gethostname()`` says there, and a try records)."""
    netns: str
    """The network namespace's name."""
    index: int
    """k of its /30: 10.231.<k>.0/30."""
    forwarders: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        """The root end of its veth: where it reaches the services (forwarded ports)."""
        return f"{SUBNET}.{self.index}.1"

    @property
    def address(self) -> str:
        """Its own address, at the namespace's end of the veth."""
        return f"{SUBNET}.{self.index}.2"

    def url(self, url: str) -> str:
        """``url`` with its host ``127.0.0.1`` or ``localhost`` replaced by :attr:`gateway` (port kept)."""
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"not a loopback URL: {url!r}")
        netloc = parts.netloc.rsplit("@", 1)
        where = netloc[-1].replace(parts.hostname, self.gateway, 1)
        return urlunsplit(parts._replace(netloc="@".join([*netloc[:-1], where])))

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in this host's namespace under its hostname (each step execs: the pid is ``argv``'s)."""
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.name,
            *argv,
        ]

    def popen(self, argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this host with environment ``env``, stdout and stderr appended to ``log``."""
        with log.open("ab") as out:
            return subprocess.Popen(
                self.command(argv), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def pids(self) -> list[int]:
        """Every process in the namespace now."""
        result = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL every process in the namespace (again, for those forked meanwhile) until none is left.
        Raises ``RuntimeError`` if some are still there after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while pids := [p for p in self.pids() if _alive(p)]:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes left in {self.netns}: {pids}")
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Hosts:
    """Test hosts named ``names``, with ``ports`` of 127.0.0.1 forwarded to each (more with :meth:`forward`).

    Use as a context manager (or call :meth:`close`). Raises ``RuntimeError`` naming the ``ip`` command
    that failed, or when all 250 /30s are taken.
    """

    def __init__(self, names: Iterable[str], ports: Iterable[int] = ()) -> None:
        self.hosts: dict[str, Host] = {}
        self.ports: list[int] = []
        self.owner = os.getpid()
        try:
            with _locked():
                delete_stale()
                taken = {int(m.group("k")) for m in map(_NETNS.match, _netns_list()) if m}
                free = (k for k in range(1, 251) if k not in taken and not Path(f"/sys/class/net/hr{k}").exists())
                for name in names:
                    k = next(free, None)
                    if k is None:
                        raise RuntimeError(f"no free /30 left in {SUBNET}.0.0/16 for test host {name!r}")
                    self.hosts[name] = _make_host(name, k, self.owner)
            for port in ports:
                self.forward(port)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def forward(self, port: int) -> None:
        """Forward 127.0.0.1:``port`` to every host (at its :attr:`Host.gateway`, same port); wait until each
        forwarder listens."""
        if port in self.ports:
            return
        self.ports.append(port)
        for host in self.hosts.values():
            proc = subprocess.Popen(
                [
                    "socat",
                    f"TCP-LISTEN:{port},bind={host.gateway},fork,reuseaddr,backlog=512",
                    f"TCP:127.0.0.1:{port},nodelay",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: close() kills it with its connections' children
            )
            host.forwarders.append(proc)
            _wait_listening(host.gateway, port, proc)

    def close(self) -> None:
        """Kill every process on the hosts and their forwarders; delete the namespaces and veths."""
        for host in self.hosts.values():
            try:
                host.kill()
            finally:
                for proc in host.forwarders:
                    _kill_group(proc)
                _ip("netns", "del", host.netns, check=False)
                _ip("link", "del", f"hr{host.index}", check=False)
        self.hosts.clear()


def _make_host(name: str, k: int, owner: int) -> Host:
    netns = f"hr-{name}-{k}-{owner}"
    outer, inner = f"hr{k}", f"hr{k}n"
    _ip("netns", "add", netns)
    host = Host(name, netns, k)
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("addr", "add", f"{host.gateway}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", netns, "addr", "add", f"{host.address}/30", "dev", inner)
        _ip("-n", netns, "link", "set", inner, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
    except BaseException:
        _ip("netns", "del", netns, check=False)
        _ip("link", "del", outer, check=False)
        raise
    return host


def _netns_list() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.strip()]


def delete_stale() -> list[str]:
    """Delete the test hosts whose owner process is gone (their processes, forwarders, veth, namespace);
    return their namespaces' names. Call under the lock."""
    gone = []
    for netns in _netns_list():
        match = _NETNS.match(netns)
        if match is None or psutil.pid_exists(int(match.group("owner"))):
            continue
        k = int(match.group("k"))
        host = Host(match.group("name"), netns, k)
        host.kill()
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "socat" and any(f"bind={host.gateway}," in a for a in proc.info["cmdline"] or []):
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        _ip("netns", "del", netns, check=False)
        _ip("link", "del", f"hr{k}", check=False)
        gone.append(netns)
    return gone


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with LOCK.open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.ip == address and c.laddr.port == port
            for c in psutil.Process(proc.pid).net_connections("tcp")
        ):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"socat forwarding {address}:{port} exited ({proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"socat not listening on {address}:{port} after {timeout} s")
        time.sleep(0.02)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
