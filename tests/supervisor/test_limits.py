"""Process-tree sampling and killing."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from headrace.supervisor.limits import ChildUsage, Limits, ProcessTree, TreeSample, format_mib

CHILD = """
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "x = b'y' * (60 * 1024 * 1024); import time; time.sleep(60)"])
print(grandchild.pid, flush=True)
time.sleep(60)
"""


def test_sample_sums_the_tree_and_kill_reaches_descendants() -> None:
    before = ChildUsage.now()
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    tree = ProcessTree(proc.pid)
    deadline = time.monotonic() + 20
    while (sample := tree.sample()).rss_bytes < 60 * 1024 * 1024:
        assert time.monotonic() < deadline, "the grandchild never reached 60 MiB"
        time.sleep(0.02)
    assert sample.pids[0] == proc.pid and grandchild in sample.pids
    tree.kill()
    proc.wait()
    after = ChildUsage.now()
    peak, cpu = tree.final_usage(before, after)
    assert peak >= 60 * 1024 * 1024 and cpu >= 0
    deadline = time.monotonic() + 10
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "grandchild survived the kill"
        time.sleep(0.01)
    assert tree.sample() == TreeSample(rss_bytes=0, pids=())


def test_limits_and_message() -> None:
    limits = Limits(memory_limit=256 * 1024 * 1024)
    over = TreeSample(rss_bytes=int(300.2 * 1024 * 1024), pids=(1,))
    assert limits.memory_exceeded(over)
    assert not Limits().memory_exceeded(over)
    assert limits.memory_message(over) == "memory_limit 256.0 MiB exceeded: process tree RSS 300.2 MiB; killing"
    assert format_mib(1024 * 1024) == "1.0 MiB"


def test_format_memory_writes_limits_as_authors_do() -> None:
    from headrace.supervisor.limits import format_memory

    assert [format_memory(n) for n in (256 << 20, 3 << 29, 1 << 30, 1536, 1000, (300 << 20) + (512 << 10))] == [
        "256 MiB",
        "1.5 GiB",
        "1 GiB",
        "1.5 KiB",
        "1000 bytes",
        "300.5 MiB",
    ]


def test_sample_of_given_pids_measures_their_cpu_and_no_rss() -> None:
    """With the pids given (a try cgroup's members) and ``rss=False``, a sample measures those processes'
    CPU only: the memory figure comes from the cgroup, and no walk of the host's processes is needed."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        tree = ProcessTree(busy.pid)
        deadline = time.monotonic() + 20
        while (sample := tree.sample([busy.pid], rss=False)) and tree.sampled_cpu_seconds < 0.05:
            assert time.monotonic() < deadline, "the busy process never showed CPU"
            time.sleep(0.02)
        assert sample == TreeSample(rss_bytes=0, pids=(busy.pid,))
        assert tree.peak_rss_bytes == 0
        assert tree.sample([], rss=False) == TreeSample(rss_bytes=0, pids=())
    finally:
        busy.kill()
        busy.wait()
    assert tree.sample([busy.pid], rss=False) == TreeSample(rss_bytes=0, pids=())  # gone: skipped
