"""cgroups.py: where try cgroups are made, and a real try cgroup (or marker) holding, measuring and killing."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.supervisor.cgroups import (
    TRY_MARKER,
    Containment,
    describe_mode,
    find_hierarchy,
    hierarchy_in_use,
    marked_processes,
)
from tests.supervisor.tryrows import make_try, run_supervisor, try_row, write_dag
from tests.waiting import wait_until

MIB = 1024 * 1024


def _fake_proc(tmp_path: Path, cgroup: str, mountinfo: list[str]) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text("\n".join(mountinfo) + "\n")
    return proc


def _fake_cgroup(path: Path, subtree_control: str = "") -> None:
    path.mkdir(parents=True)
    (path / "cgroup.procs").write_text("")
    (path / "cgroup.subtree_control").write_text(subtree_control)


def test_find_hierarchy_prefers_memory_accounting_then_v2(tmp_path: Path) -> None:
    v2, mem, pids = tmp_path / "unified", tmp_path / "memory", tmp_path / "pids"
    _fake_cgroup(v2 / "svc")
    _fake_cgroup(mem / "box")
    _fake_cgroup(pids / "box")
    proc = _fake_proc(
        tmp_path,
        "9:pids:/box\n4:memory:/box\n0::/svc\n",
        [
            f"30 25 0:26 / {v2} rw,relatime shared:9 - cgroup2 cgroup2 rw",
            f"31 25 0:27 / {mem} rw,relatime shared:10 - cgroup cgroup rw,memory",
            f"32 25 0:28 / {pids} rw,relatime shared:11 - cgroup cgroup rw,pids",
        ],
    )
    # v2 without the memory controller for its children loses to v1 memory (which measures the try) ...
    found = find_hierarchy(proc)
    assert found is not None and (found.version, found.parent, found.controller, found.memory) == (
        1,
        mem / "box",
        "memory",
        True,
    )
    # ... and wins once memory is enabled for its children.
    (v2 / "svc" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    found = find_hierarchy(proc)
    assert found is not None and (found.version, found.parent, found.memory) == (2, v2 / "svc", True)
    # Without v1 memory and v2 memory, v2 still contains (cgroup.kill) before v1 pids does.
    (v2 / "svc" / "cgroup.subtree_control").write_text("")
    (proc / "self" / "cgroup").write_text("9:pids:/box\n0::/svc\n")
    found = find_hierarchy(proc)
    assert found is not None and (found.version, found.memory) == (2, False)


def test_find_hierarchy_none_without_a_writable_cgroup(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, "0::/missing\n", [f"30 25 0:26 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw"])
    assert find_hierarchy(proc) is None
    assert find_hierarchy(tmp_path / "no-proc") is None
    assert describe_mode("marker") == "best-effort (environment marker and child subreaper): no cgroup"
    with pytest.raises(ValueError, match="core.try_containment must be one of auto, cgroup, marker"):
        hierarchy_in_use("container")


def _spawn_tree(containment: Containment, ready: Path) -> int:
    """Fork a child that joins ``containment`` and leaves two escaped sleeps and an orphan; return its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            containment.join()
            subprocess.Popen(["sleep", "600"], start_new_session=True)
            subprocess.Popen(["setsid", "sleep", "600"])
            subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 &"], check=True)
            ready.write_text("ok")
            code = 0
        finally:
            os._exit(code)
    return pid


def _in_a_fresh_process(check: Callable[[], None]) -> None:
    """Run ``check`` in a forked child standing for a supervisor, and fail with its traceback if it fails.

    A containment counts the descendants of the process that uses it; the pytest worker may still have
    children of earlier tests (a fork server waiting out its idle timeout), a supervisor never does.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        report = b"ok"
        try:
            check()
        except BaseException:  # noqa: BLE001 - everything goes back to the test as text
            report = traceback.format_exc().encode()
        finally:
            os.write(write_fd, report)
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == b"ok", report.decode()


@pytest.mark.parametrize("mode", ["auto", "marker"])
def test_containment_finds_kills_and_removes_what_the_child_left(tmp_path: Path, mode: str) -> None:
    _in_a_fresh_process(lambda: _finds_kills_and_removes(tmp_path, mode))


def _finds_kills_and_removes(tmp_path: Path, mode: str) -> None:
    containment = Containment(hierarchy_in_use(mode), f"test-{os.getpid()}-{mode}")
    containment.prepare()
    # Marker containment counts on the supervisor being a subreaper; the test process must not become one.
    pid = _spawn_tree(containment, tmp_path / "ready")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    try:
        if mode == "marker":
            # Without the subreaper the orphans went to init: only the marker finds the ones that exec'd.
            found = marked_processes(containment.marker)
        else:
            found = containment.pids()
        assert len(found) == 3, found
        leftovers = containment.kill_all()
        assert (leftovers.left, leftovers.killed) == (3, 3)
        if mode != "marker":
            assert containment.pids() == []
        assert not any(Path(f"/proc/{p}").exists() and _state(p) not in "ZX" for p in found)
    finally:
        containment.signal(9)
        assert containment.remove()
    if containment.path is not None:
        assert not containment.path.exists()


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rfind(")") + 2]


def test_marked_processes_sees_the_marker_only_in_what_was_executed_after_it_was_set() -> None:
    marker = f"marker-test-{os.getpid()}"
    env = {**os.environ, TRY_MARKER: marker}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**env, TRY_MARKER: "x"})
    try:
        assert wait_until(lambda: marked_processes(marker), what="the marked child") == [child.pid]
    finally:
        for proc in (child, other):
            proc.kill()
            proc.wait()


def test_peak_memory_of_an_escaped_process_comes_from_the_try_cgroup(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    hierarchy = hierarchy_in_use("auto")
    assert hierarchy is not None and hierarchy.memory, "CI runs where a cgroup hierarchy accounts memory"
    # Sampling never runs (the try is over before the first sample) and rusage misses a process not yet reaped:
    # only the cgroup's high-water mark sees the escaped process's 200 MiB.
    settings = settings.with_overrides({"executor": {"memory_poll_interval": 30}})
    ready = tmp_path / "ready"
    dag_file = write_dag(
        tmp_path / "dags",
        f"""
        import subprocess
        HOG = "import sys, time; data = b'x' * (200 * 1024 * 1024); open(sys.argv[1], 'w').write('ok'); time.sleep(600)"
        def spawn():
            subprocess.Popen([sys.executable, "-c", HOG, {str(ready)!r}], start_new_session=True)
            while not os.path.exists({str(ready)!r}):
                time.sleep(0.01)
        with DAG("hog") as dag:
            PythonOperator(task_id="t", python_callable=spawn)
    """,
    )
    request = make_try(db, dag_file, "hog", "t")
    assert run_supervisor(settings, request) == 0
    row = try_row(db, request.ti_id, 1)
    assert row is not None and row.peak_rss_bytes is not None
    assert (row.state, row.containment, row.processes_left, row.processes_killed) == ("success", "cgroup", 1, 1)
    assert row.peak_rss_bytes >= 200 * MIB


def test_a_supervisor_removes_try_cgroups_left_by_killed_supervisors(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    hierarchy = hierarchy_in_use("auto")
    assert hierarchy is not None
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names a supervisor that was SIGKILLed before it removed its try's cgroup
    stale = Containment(hierarchy, f"77-1-{gone.pid}")
    stale.prepare()
    orphan = subprocess.Popen(["sleep", "600"])
    try:
        assert stale.path is not None
        (stale.path / "cgroup.procs").write_text(str(orphan.pid))
        dag_file = write_dag(
            tmp_path / "dags", 'with DAG("ok") as dag:\n    BashOperator(task_id="t", bash_command="true")\n'
        )
        assert run_supervisor(settings, make_try(db, dag_file, "ok", "t")) == 0
        assert not stale.path.exists()
        assert orphan.wait(timeout=1) == -9  # what was in it was killed
    finally:
        orphan.kill()
        orphan.wait()
        stale.remove()
