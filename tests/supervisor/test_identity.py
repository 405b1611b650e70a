"""ProcessIdentity: pid-reuse-proof liveness."""

from __future__ import annotations

import os
import subprocess
import sys

from headrace.supervisor.identity import ProcessIdentity, hostname


def test_live_process_is_alive_and_local() -> None:
    me = ProcessIdentity.of(os.getpid())
    assert me.is_local() and me.is_alive()
    assert ProcessIdentity.of(os.getpid()) == me


def test_reused_pid_or_other_host_is_not_alive() -> None:
    me = ProcessIdentity.of(os.getpid())
    assert not ProcessIdentity(me.host, me.pid, me.start_time - 5).is_alive()  # same pid, another process
    assert not ProcessIdentity("some-other-host", me.pid, me.start_time).is_alive()
    assert not ProcessIdentity("some-other-host", me.pid, me.start_time).is_local()


def test_exited_process_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = ProcessIdentity.of(proc.pid)
    assert identity.is_alive() and identity.host == hostname()
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait()
    assert not identity.is_alive()
