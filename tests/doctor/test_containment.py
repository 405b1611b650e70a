"""The doctor's containment findings, against this host's real cgroups."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from headrace.config import Settings, load_settings
from headrace.doctor.containment import containment_findings
from headrace.doctor.findings import Area, Severity
from headrace.supervisor.cgroups import CGROUP_PREFIX, Containment, hierarchy_in_use


def _settings(tmp_path: Path, mode: str) -> Settings:
    return load_settings({"HEADRACE_HOME": str(tmp_path), "HEADRACE__CORE__TRY_CONTAINMENT": mode})


def test_reports_the_cgroup_in_use_and_best_effort_marker(tmp_path: Path) -> None:
    hierarchy = hierarchy_in_use("auto")
    assert hierarchy is not None, "CI runs where a cgroup hierarchy is writable"
    [found] = [f for f in containment_findings(_settings(tmp_path, "auto")) if "stale_cgroups" not in f.figures]
    assert (found.area, found.severity, found.figures["containment"], found.figures["cgroup_parent"]) == (
        Area.PROCESSES,
        Severity.OK,
        "cgroup",
        str(hierarchy.parent),
    )
    [marker] = containment_findings(_settings(tmp_path, "marker"))
    assert (marker.severity, marker.figures["containment"]) == (Severity.INFO, "marker")
    assert marker.title.startswith("try containment is best-effort")


def test_flags_a_try_cgroup_whose_supervisor_is_gone(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid nobody has now: the "supervisor" of the stale cgroup
    stale = Containment(hierarchy_in_use("auto"), f"9-1-{gone.pid}")
    stale.prepare()
    sleeper = None
    try:
        assert stale.path is not None and stale.path.name == f"{CGROUP_PREFIX}9-1-{gone.pid}"
        sleeper = subprocess.Popen(["sleep", "600"])
        (stale.path / "cgroup.procs").write_text(str(sleeper.pid))
        warnings = [f for f in containment_findings(_settings(tmp_path, "auto")) if f.severity is Severity.WARNING]
        [warning] = [w for w in warnings if str(stale.path) in w.title]
        assert warning.figures["processes_in_them"] >= 1
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        assert stale.remove()
    assert not os.path.exists(stale.path)
