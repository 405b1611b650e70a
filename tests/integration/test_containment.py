"""A try's escaped descendants end with it: through the scheduler loop, the LocalExecutor and real supervisors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskTry
from headrace.supervisor.cgroups import CGROUP_PREFIX, hierarchy_in_use, try_marker
from headrace.supervisor.identity import ProcessIdentity, hostname
from tests.waiting import wait_until

from .helpers import FAST, parse_and_trigger, run_scheduler_until_done, ti_states, write_dag

LEAKY_DAG = """
import os, subprocess
import psutil
from headrace import DAG
from headrace.operators import PythonOperator

def spawn():
    escaped = subprocess.Popen(["sleep", "600"], start_new_session=True)
    same_group = subprocess.Popen(["sleep", "600"])
    # An orphan in a session of its own: its shell exits at once, leaving the sleep to be re-parented.
    shell = subprocess.run(
        ["setsid", "sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True
    )
    for name, pid in (("escaped", escaped.pid), ("same_group", same_group.pid), ("orphan", int(shell.stdout))):
        with open(os.path.join({pid_dir!r}, name), "w") as f:
            f.write(f"{{pid}} {{psutil.Process(pid).create_time()!r}}")

with DAG("leaky"):
    PythonOperator(task_id="spawn", python_callable=spawn)
"""


def _started(pid_dir: Path) -> dict[str, ProcessIdentity]:
    found = {}
    for path in pid_dir.iterdir():
        pid, start = path.read_text().split()
        found[path.name] = ProcessIdentity(hostname(), int(pid), float(start))
    return found


@pytest.mark.parametrize("containment", ["auto", "marker"])
def test_escaped_descendants_die_with_the_try_and_are_counted(
    settings: Settings, db: Database, tmp_path: Path, containment: str
) -> None:
    settings = settings.with_overrides({**FAST, "core": {**FAST["core"], "try_containment": containment}})
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    write_dag(settings, "leaky.py", LEAKY_DAG.format(pid_dir=str(pid_dir)))
    parse_and_trigger(settings, db, "leaky")
    try:
        run_scheduler_until_done(settings, db)
        assert ti_states(db) == {"spawn": "success"}
        started = _started(pid_dir)
        assert sorted(started) == ["escaped", "orphan", "same_group"]
        # The supervisor kills them before it records the try: gone by now (1 s: a generous deadline).
        wait_until(
            lambda: not any(p.is_alive() for p in started.values()), timeout=1.0, what="the try's leftovers to be gone"
        )
        with db.session() as session:
            row = session.scalars(select(TaskTry)).one()
        hierarchy = hierarchy_in_use(containment)
        assert (row.containment, row.processes_left, row.processes_killed) == (
            "cgroup" if hierarchy is not None else "marker",
            3,
            3,
        )
        log = Path(row.log_path).read_text()
        assert "3 process(es) of the try were still running after the task process ended" in log
        if hierarchy is not None:  # the try's cgroup is removed with it
            name = CGROUP_PREFIX + try_marker(row.task_instance_id, row.try_number, row.supervisor_pid)
            assert not (hierarchy.parent / name).exists()
    finally:  # never leave sleeps behind, whatever failed
        for identity in _started(pid_dir).values():
            if identity.is_alive():
                os.kill(identity.pid, 9)
