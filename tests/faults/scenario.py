"""What the fault tests share: a real scheduler in a subprocess, and tasks that count how often their code ran.

Every task of a fault DAG appends one line to ``<out>/<task_id>.started`` when
its code begins and one line to ``<out>/<task_id>.done`` when its code ends;
"each task's code ran exactly once" is then ``done`` holding one line per task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import DagRun, TaskInstance, TaskTry
from tests.integration.helpers import FAST, write_dag

FAULT = {**FAST, "database": {"outage_tolerance": 300}}
"""Quick loops, and supervisors and the scheduler that wait out an outage of up to 5 minutes."""


def counting_dag(
    settings: Settings,
    dag_id: str,
    out: Path,
    *,
    tasks: int,
    seconds: float,
    chain: bool = False,
    retries: int = 2,
    bash_every: int = 2,
) -> list[str]:
    """Write a DAG of ``tasks`` tasks that each run ``seconds`` s and count their runs in ``out``.

    Every ``bash_every``-th task is a BashOperator whose shell does the work
    (a grandchild of the supervisor, which a parent-death signal does not
    reach); the others are ``@task`` functions. ``chain`` links them
    ``t0 >> t1 >> …``. Returns the task ids.
    """
    out.mkdir(parents=True, exist_ok=True)
    ids = [f"t{i}" for i in range(tasks)]
    lines = [
        "from datetime import timedelta",
        "import time",
        "from headrace import DAG, task",
        "from headrace.operators import BashOperator",
        "",
        f"with DAG({dag_id!r}, schedule=None, default_args={{'retries': {retries}, "
        "'retry_delay': timedelta(seconds=0)}):",
        "    made = []",
    ]
    for i, task_id in enumerate(ids):
        started, done = out / f"{task_id}.started", out / f"{task_id}.done"
        if bash_every and i % bash_every == 1:
            lines.append(
                f"    made.append(BashOperator(task_id={task_id!r}, bash_command="
                f"'echo x >> {started}; sleep {seconds}; echo x >> {done}'))"
            )
        else:
            lines += [
                f"    @task(task_id={task_id!r})",
                f"    def work_{i}():",
                f"        with open({str(started)!r}, 'a') as f: f.write('x\\n')",
                f"        time.sleep({seconds})",
                f"        with open({str(done)!r}, 'a') as f: f.write('x\\n')",
                f"    made.append(work_{i}())",
            ]
    if chain:
        lines += ["    for a, b in zip(made, made[1:]):", "        a >> b"]
    write_dag(settings, f"{dag_id}.py", "\n".join(lines) + "\n")
    return ids


def count(path: Path) -> int:
    """Lines in ``path`` (0 if it does not exist)."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def start_scheduler(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``python -m headrace.scheduler`` with ``settings``, output appended to ``log``."""
    env = {**os.environ, **settings.to_env()}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "headrace.scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_scheduler(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM and wait; fail with the log if it does not stop cleanly."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert code == 0, f"scheduler exited with {code}:\n{log.read_text()[-4000:]}"


def run_states(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {r.run_id: r.state for r in session.scalars(select(DagRun))}


def finished(db: Database) -> bool:
    states = set(run_states(db).values())
    return bool(states) and states <= {"success", "failed"}


def ti_rows(db: Database) -> dict[str, TaskInstance]:
    with db.session() as session:
        return {ti.task_id: ti for ti in session.scalars(select(TaskInstance))}


def try_rows(db: Database) -> list[TaskTry]:
    with db.session() as session:
        return list(session.scalars(select(TaskTry).order_by(TaskTry.task_id, TaskTry.try_number)))


def alive(pid: int | None) -> bool:
    """True if ``pid`` names a live, non-zombie process."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
