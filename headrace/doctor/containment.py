"""How tries' processes are contained on this host (``core.try_containment``), and try cgroups left behind.

``cgroup`` containment is exact: every process a try starts is in the try's
cgroup and dies with it. ``marker`` containment is best effort (see
:mod:`headrace.supervisor.cgroups`): the doctor says so, and what would make
cgroups available. A try cgroup whose supervisor is gone (the supervisor was
SIGKILLed before it removed it) is reported with the processes still in it.
"""

from __future__ import annotations

from pathlib import Path

from headrace.config import Settings
from headrace.doctor.findings import Area, Finding, Severity, set_setting
from headrace.supervisor.cgroups import ContainmentError, Hierarchy, hierarchy_in_use, stale_cgroups

SETTING = ("core", "try_containment")


def _stale_cgroups(hierarchy: Hierarchy) -> list[tuple[Path, int]]:
    """Try cgroups whose supervisor is gone, with the number of processes still in each."""
    found = []
    for path in stale_cgroups(hierarchy):
        try:
            found.append((path, len((path / "cgroup.procs").read_text().split())))
        except OSError:
            continue
    return found


def containment_findings(settings: Settings) -> list[Finding]:
    """Area "processes": the containment in use on this host, and stale try cgroups (one finding each kind)."""
    mode = settings.get_str(*SETTING)
    try:
        hierarchy = hierarchy_in_use(mode)
    except ContainmentError as exc:
        return [
            Finding(
                Area.PROCESSES,
                Severity.ERROR,
                f"try containment: {exc}; every try fails before it starts",
                {"try_containment": mode, "containment": None},
                "run headrace where a cgroup hierarchy is writable (root, or a delegated cgroup), or "
                + set_setting(*SETTING, "auto"),
            )
        ]
    if hierarchy is None:
        chosen = mode == "marker"
        return [
            Finding(
                Area.PROCESSES,
                Severity.INFO if chosen else Severity.WARNING,
                "try containment is best-effort: no cgroup "
                + ("(core.try_containment = marker)" if chosen else "hierarchy is writable here")
                + "; a try's escaped processes are found by its environment marker and as orphans of its "
                "supervisor, and missed if they clear their environment while the supervisor is gone",
                {"try_containment": mode, "containment": "marker"},
                ""
                if chosen
                else "give headrace a writable cgroup (cgroup v2 delegation, e.g. systemd Delegate=yes, or run as root) "
                "for exact containment",
            )
        ]
    findings = [
        Finding(
            Area.PROCESSES,
            Severity.OK,
            f"each try runs in its own cgroup ({hierarchy.describe()}): its processes end with it",
            {
                "try_containment": mode,
                "containment": "cgroup",
                "cgroup_version": hierarchy.version,
                "cgroup_parent": str(hierarchy.parent),
                "memory_accounted": hierarchy.memory,
            },
        )
    ]
    stale = _stale_cgroups(hierarchy)
    if stale:
        busy = sum(procs for _, procs in stale)
        findings.append(
            Finding(
                Area.PROCESSES,
                Severity.WARNING,
                f"{len(stale)} try cgroup(s) outlived their supervisor, holding {busy} process(es): "
                + ", ".join(str(p) for p, _ in stale[:5]),
                {"stale_cgroups": len(stale), "processes_in_them": busy},
                "the next try on this host removes them (killing what is in them); or write 1 to each one's cgroup.kill "
                "(v2) or kill the pids in its cgroup.procs, then rmdir it",
            )
        )
    return findings
