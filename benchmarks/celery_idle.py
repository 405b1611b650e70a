"""An idle Celery worker of 16 slots: headrace's beside a plain prefork one (issue #10).

    python benchmarks/celery_idle.py [--broker redis://127.0.0.1:6379/0] [--concurrency 16] [--settle 5]

Starts, one after the other, on the same broker (each on a queue of its own):

* ``headrace celery worker --concurrency 16`` — Celery's ``threads`` pool:
  slots are threads, tries are forked on demand by a fork server that exists
  only while tries run (and ``executor.forkserver_idle_timeout`` after);
* ``celery -A <a one-task app> worker -c 16`` — Celery's default ``prefork``
  pool: 16 child processes that wait for work.

Once a worker said it is ready and ``--settle`` seconds passed, it prints the
number of processes (the worker and all its descendants) and their total RSS
(resident set size: pages shared between a parent and its forked children are
counted in each, as ``ps`` does), and PSS (proportional set size: shared pages
divided among the processes sharing them, so the sum is what the machine
really spends), then stops the worker.

Figures on the 2-CPU development VM (Python 3.11, Celery 5.7, Redis; shared with other test runs):

    worker                                processes   RSS total    PSS total
    headrace celery worker -c 16 (idle)   1            58.0 MiB     46.6 MiB
    celery worker -c 16 (prefork, idle)   17          939.9 MiB    500.0 MiB

In the ``forkserver_idle_timeout`` (30 s) after its last try, a headrace worker
is two processes: its fork server added 77 MiB RSS (seen with ``ps`` after a
try ran), about 135 MiB in all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psutil

TINY_APP = """
from celery import Celery

app = Celery("tiny", broker={broker!r})


@app.task
def noop():
    return None
"""


def measure(command: list[str], env: dict[str, str], log: Path, settle: float) -> tuple[int, int, int]:
    """Start ``command``, wait for its ready line and ``settle`` s; return (processes, RSS bytes, PSS bytes)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        give_up = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > give_up:
                raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        time.sleep(settle)
        root = psutil.Process(proc.pid)
        processes = [root, *root.children(recursive=True)]
        rss = pss = 0
        for process in processes:
            info = process.memory_full_info()
            rss += info.rss
            pss += info.pss
        return len(processes), rss, pss
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after the worker is ready")
    args = parser.parse_args()
    prefix = f"bench-idle-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "home" / "dags").mkdir(parents=True)
        (folder / "tiny_app.py").write_text(textwrap.dedent(TINY_APP.format(broker=args.broker)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE")}
        env.update(
            HEADRACE_HOME=str(folder / "home"),
            HEADRACE__CELERY__BROKER_URL=args.broker,
            HEADRACE__CELERY__DEFAULT_QUEUE=f"{prefix}-headrace",
            PYTHONPATH=str(folder),
        )
        bin_dir = Path(sys.executable).parent
        rows = [
            (
                f"headrace celery worker -c {args.concurrency} (idle)",
                measure(
                    [
                        str(bin_dir / "headrace"),
                        "celery",
                        "worker",
                        "-c",
                        str(args.concurrency),
                        "-n",
                        f"{prefix}-a@%h",
                    ],
                    env,
                    folder / "headrace.log",
                    args.settle,
                ),
            ),
            (
                f"celery worker -c {args.concurrency} (prefork, idle)",
                measure(
                    [
                        str(bin_dir / "celery"),
                        "-A",
                        "tiny_app",
                        "worker",
                        "-c",
                        str(args.concurrency),
                        "-Q",
                        f"{prefix}-plain",
                        "-n",
                        f"{prefix}-b@%h",
                        "--without-mingle",
                        "--without-gossip",
                        "--loglevel",
                        "INFO",
                    ],
                    env,
                    folder / "celery.log",
                    args.settle,
                ),
            ),
        ]
    print(f"{'worker':<40}{'processes':>10}{'RSS total':>14}{'PSS total':>14}")
    for name, (count, rss, pss) in rows:
        print(f"{name:<40}{count:>10}{rss / 1048576:>10.1f} MiB{pss / 1048576:>10.1f} MiB")


if __name__ == "__main__":
    main()
