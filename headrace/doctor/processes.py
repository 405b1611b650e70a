"""Which headrace processes are alive on this host and why, and whether running tries' processes still exist.

A process is *headrace-like* when its command line runs headrace: the
``headrace`` script, ``python -m headrace …``, or a ``headrace.*`` module
(``headrace.executors.forkserver``, ``headrace.supervisor``,
``headrace.scheduler``). Supervisors and task processes are forked from the
fork server, so they carry its command line; they are told apart by the pids
the database records. Each live one is explained from the database:

* ``scheduler_job`` rows not ended → the scheduler processes (pid + start time);
* ``task_try`` rows of running task instances → their supervisor and task
  process (pid + start time, :class:`~headrace.supervisor.identity.ProcessIdentity`),
  and the task process's descendants;
* a fork server is the fork-server process that is none of those, child of a
  scheduler; it is *idle* with no child;
* forked children of a scheduler (DAG file parsing, DAG callbacks), the API
  server and other CLI commands are explained by their command line.

Anything else headrace-like is *unexplained*. The doctor's own process and its
ancestors are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psutil
from sqlalchemy import and_, select

from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import Lease, SchedulerJob, TaskInstance, TaskTry
from headrace.doctor.findings import Area, Finding, Severity
from headrace.supervisor.identity import START_TIME_TOLERANCE, ProcessIdentity, hostname

FORKSERVER_MODULE = "headrace.executors.forkserver"
SUPERVISOR_MODULE = "headrace.supervisor"
SCHEDULER_COMMANDS = frozenset({"scheduler", "standalone"})


@dataclass(frozen=True)
class LiveProcess:
    """A headrace-like process seen by psutil."""

    pid: int
    ppid: int
    create_time: float
    """Seconds since the epoch."""
    cmdline: tuple[str, ...]
    image: str
    """``forkserver``, ``supervisor``, ``scheduler``, ``api-server`` or ``cli`` (what its command line runs)."""

    @property
    def command(self) -> str:
        """The command line, shortened to 160 characters."""
        text = " ".join(self.cmdline)
        return text if len(text) <= 160 else text[:157] + "..."


def headrace_image(cmdline: Sequence[str]) -> str | None:
    """What a command line runs, if it is headrace: see :attr:`LiveProcess.image`; None otherwise."""
    for i, arg in enumerate(cmdline[:3]):
        module: str | None = None
        rest: Sequence[str] = ()
        if arg == "-m" and i + 1 < len(cmdline):
            candidate = cmdline[i + 1]
            if candidate == "headrace" or candidate.startswith("headrace."):
                module, rest = candidate, cmdline[i + 2 :]
        elif os.path.basename(arg) == "headrace":
            module, rest = "headrace", cmdline[i + 1 :]
        if module is None:
            continue
        if module == FORKSERVER_MODULE:
            return "forkserver"
        if module == SUPERVISOR_MODULE:
            return "supervisor"
        if module == "headrace.scheduler":
            return "scheduler"
        words = [a for a in rest if not a.startswith("-")]
        if words and words[0] in SCHEDULER_COMMANDS:
            return "scheduler"
        if words and words[0] == "api-server":
            return "api-server"
        return "cli"
    return None


def scan_processes(exclude: Iterable[int] = ()) -> dict[int, LiveProcess]:
    """Every live (not zombie) headrace-like process on this host, by pid, except ``exclude``."""
    skip = set(exclude)
    found: dict[int, LiveProcess] = {}
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "create_time", "status"]):
        info = proc.info
        if info["pid"] in skip or info["status"] == psutil.STATUS_ZOMBIE or not info["cmdline"]:
            continue
        image = headrace_image(info["cmdline"])
        if image is not None:
            found[info["pid"]] = LiveProcess(
                info["pid"], info["ppid"] or 0, float(info["create_time"] or 0.0), tuple(info["cmdline"]), image
            )
    return found


def self_and_ancestors() -> set[int]:
    """This process and its ancestors (the doctor's own command, its shell, …)."""
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


@dataclass(frozen=True)
class RunningTry:
    """The latest try of a ``running`` task instance, as recorded (None fields: no ``task_try`` row yet)."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    hostname: str | None
    supervisor_pid: int | None
    supervisor_start_time: float | None
    pid: int | None
    process_start_time: float | None
    heartbeat_at: datetime | None

    @property
    def label(self) -> str:
        """``dag_id.task_id try n (run run_id)``."""
        return f"{self.dag_id}.{self.task_id} try {self.try_number} (run {self.run_id})"

    def supervisor(self) -> ProcessIdentity | None:
        """The recorded supervisor identity."""
        if self.hostname is None or self.supervisor_pid is None or self.supervisor_start_time is None:
            return None
        return ProcessIdentity(self.hostname, self.supervisor_pid, self.supervisor_start_time)

    def task_process(self) -> ProcessIdentity | None:
        """The recorded task process identity (None until recorded)."""
        if self.hostname is None or self.pid is None or self.process_start_time is None:
            return None
        return ProcessIdentity(self.hostname, self.pid, self.process_start_time)


@dataclass(frozen=True)
class LiveJob:
    """A ``scheduler_job`` row that has not ended."""

    id: int
    hostname: str
    pid: int
    process_start_time: float
    heartbeat_at: datetime
    holds_lease: bool


def load_running(db: Database) -> tuple[list[RunningTry], list[LiveJob]]:
    """The latest tries of running task instances, and the scheduler jobs not ended."""
    with db.read_session() as session:
        rows = session.execute(
            select(
                TaskInstance.dag_id,
                TaskInstance.run_id,
                TaskInstance.task_id,
                TaskInstance.try_number,
                TaskTry.hostname,
                TaskTry.supervisor_pid,
                TaskTry.supervisor_start_time,
                TaskTry.pid,
                TaskTry.process_start_time,
                TaskTry.heartbeat_at,
            )
            .outerjoin(
                TaskTry,
                and_(TaskTry.task_instance_id == TaskInstance.id, TaskTry.try_number == TaskInstance.try_number),
            )
            .where(TaskInstance.state == "running")
            .order_by(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id)
        ).all()
        holder = session.scalar(select(Lease.holder_job_id).where(Lease.name == "scheduler"))
        jobs = session.execute(
            select(
                SchedulerJob.id,
                SchedulerJob.hostname,
                SchedulerJob.pid,
                SchedulerJob.process_start_time,
                SchedulerJob.heartbeat_at,
            )
            .where(SchedulerJob.ended_at.is_(None))
            .order_by(SchedulerJob.id)
        ).all()
    return (
        [RunningTry(**row._asdict()) for row in rows],
        [LiveJob(int(j[0]), j[1], j[2], j[3], j[4], holds_lease=j[0] == holder) for j in jobs],
    )


def describe_identity(identity: ProcessIdentity) -> str:
    """On this host: ``alive``, ``not alive``, or ``pid N now belongs to another process (started later)``."""
    if identity.is_alive():
        return "alive"
    try:
        proc = psutil.Process(identity.pid)
        created = proc.create_time()
        status = proc.status()
    except psutil.NoSuchProcess:
        return "not alive"
    except psutil.AccessDenied:
        return f"pid {identity.pid} now belongs to another process (of another user)"
    if abs(created - identity.start_time) <= START_TIME_TOLERANCE and status == psutil.STATUS_ZOMBIE:
        return "not alive (exited, not reaped yet)"
    when = "later" if created > identity.start_time else "earlier"
    return (
        f"pid {identity.pid} now belongs to another process "
        f"(started {abs(created - identity.start_time):.1f} s {when} than the recorded one)"
    )


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def try_findings(settings: Settings, tries: list[RunningTry], now: datetime) -> list[Finding]:
    """Area "running tries": for each running try, are its recorded supervisor and task process still there?"""
    here = hostname()
    timeout = settings.get_float("scheduler", "task_instance_heartbeat_timeout")
    hint = (
        f"the scheduler ends it as a zombie once its heartbeat is older than "
        f"scheduler.task_instance_heartbeat_timeout ({timeout:g} s); `headrace ps` shows it"
    )
    findings: list[Finding] = []
    for t in tries:
        beat = _age(now, t.heartbeat_at)
        figures: dict[str, object] = {
            "dag_id": t.dag_id,
            "run_id": t.run_id,
            "task_id": t.task_id,
            "try_number": t.try_number,
            "hostname": t.hostname,
            "supervisor_pid": t.supervisor_pid,
            "pid": t.pid,
            "heartbeat_age_seconds": None if beat is None else round(beat, 3),
        }
        sup = t.supervisor()
        if sup is None:
            findings.append(
                Finding(
                    Area.TRIES,
                    Severity.WARNING,
                    f"{t.label}: running, but no try row records its processes",
                    figures,
                    hint,
                )
            )
            continue
        if t.hostname != here:
            stale = beat is not None and beat > timeout
            findings.append(
                Finding(
                    Area.TRIES,
                    Severity.WARNING if stale else Severity.INFO,
                    f"{t.label}: runs on {t.hostname}, not checkable from here; heartbeat {beat or 0:.1f} s ago",
                    figures,
                    hint if stale else "",
                )
            )
            continue
        task = t.task_process()
        sup_verdict = describe_identity(sup)
        task_verdict = describe_identity(task) if task is not None else "not recorded"
        figures.update(supervisor=sup_verdict, task_process=task_verdict)
        if sup_verdict == "alive" and task_verdict == "alive":
            findings.append(
                Finding(
                    Area.TRIES,
                    Severity.OK,
                    f"{t.label}: supervisor pid {t.supervisor_pid} and task process pid {t.pid} alive",
                    figures,
                )
            )
            continue
        parts = []
        if sup_verdict != "alive":
            parts.append(f"supervisor pid {t.supervisor_pid}: {sup_verdict}")
        if task_verdict != "alive":
            parts.append(f"task process pid {t.pid}: {task_verdict}")
        findings.append(Finding(Area.TRIES, Severity.WARNING, f"{t.label}: " + "; ".join(parts), figures, hint))
    if not tries:
        findings.append(Finding(Area.TRIES, Severity.OK, "no task instance is running", {"running_tries": 0}))
    return findings


def _descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def process_findings(
    settings: Settings,
    tries: list[RunningTry],
    jobs: list[LiveJob],
    now: datetime,
    live: dict[int, LiveProcess] | None = None,
) -> list[Finding]:
    """Area "processes": explain every headrace-like process on this host from the DB; flag the rest.

    ``live`` defaults to :func:`scan_processes` without this process and its ancestors.
    """
    here = hostname()
    live = scan_processes(self_and_ancestors()) if live is None else live
    why: dict[int, tuple[str, str]] = {}  # pid -> (role, explanation)
    findings: list[Finding] = []
    idle_timeout = settings.get_float("executor", "forkserver_idle_timeout")

    job_of_pid: dict[int, LiveJob] = {}
    for job in jobs:
        if job.hostname != here:
            continue
        if ProcessIdentity(job.hostname, job.pid, job.process_start_time).is_alive():
            job_of_pid[job.pid] = job
            beat = _age(now, job.heartbeat_at) or 0.0
            lease = ", holds the lease" if job.holds_lease else ", standby (waiting for the lease)"
            why[job.pid] = ("scheduler", f"scheduler job {job.id} (heartbeat {beat:.1f} s ago{lease})")

    running_here = [t for t in tries if t.hostname == here]
    task_children = 0
    for t in running_here:
        sup, task = t.supervisor(), t.task_process()
        if sup is not None and sup.is_alive():
            why[sup.pid] = ("supervisor", f"supervisor of {t.label}")
        if task is not None and task.is_alive():
            why[task.pid] = ("task process", f"task process of {t.label}")
            for child in _descendants(task.pid):
                task_children += 1
                why.setdefault(child, ("task child", f"started by the task process of {t.label}"))

    for pid, proc in sorted(live.items()):
        if pid in why:
            continue
        parent = live.get(proc.ppid)
        if proc.image == "forkserver" and proc.ppid in job_of_pid:
            children = [c for c in _descendants(pid) if c in live]
            if children:
                why[pid] = (
                    "fork server",
                    f"fork server of scheduler job {job_of_pid[proc.ppid].id} "
                    f"({len(children)} supervisor/task processes below it)",
                )
            else:
                why[pid] = (
                    "idle fork server",
                    f"fork server of scheduler job {job_of_pid[proc.ppid].id} "
                    f"(idle, exits after executor.forkserver_idle_timeout = {idle_timeout:g} s)",
                )
        elif proc.ppid in why and why[proc.ppid][0] == "supervisor":
            why[pid] = ("supervisor child", f"child of the {why[proc.ppid][1]} (e.g. running a task callback)")
        elif proc.image == "scheduler" and proc.ppid in job_of_pid:
            why[pid] = (
                "scheduler child",
                f"child of scheduler job {job_of_pid[proc.ppid].id} "
                "(parsing a DAG file or running a DAG callback; short-lived)",
            )
        elif proc.image == "api-server":
            why[pid] = ("api server", "API server / web UI (`headrace api-server`; not recorded in the DB)")
        elif proc.image == "cli" and (parent is None or parent.image == "cli"):
            why[pid] = ("cli", "a headrace CLI command (short-lived)")

    unexplained = {pid: p for pid, p in live.items() if pid not in why}
    listed = []
    for pid, (role, text) in sorted(why.items()):
        known = live.get(pid)
        listed.append({"pid": pid, "role": role, "why": text, "command": known.command if known else None})
    for pid, proc in sorted(unexplained.items()):
        listed.append({"pid": pid, "role": "unexplained", "why": None, "command": proc.command})

    roles = [role for role, _ in why.values()]
    count = {r: roles.count(r) for r in set(roles)}
    supervisors, task_procs = count.get("supervisor", 0), count.get("task process", 0)
    helpers = count.get("fork server", 0) + count.get("idle fork server", 0)
    total = sum(role != "task child" for role in roles) + len(unexplained)
    started_by_tasks = f" (+ {task_children} started by the tasks)" if task_children else ""
    parallelism = settings.parallelism
    figures: dict[str, object] = {
        "host": here,
        "processes": total,
        "running_tries_here": len(running_here),
        "parallelism": parallelism,
        "schedulers": count.get("scheduler", 0),
        "fork_servers": helpers,
        "idle_fork_servers": count.get("idle fork server", 0),
        "supervisors": supervisors,
        "task_processes": task_procs,
        "task_children": task_children,
        "unexplained": len(unexplained),
        "process_list": listed,
    }
    findings.append(
        Finding(
            Area.PROCESSES,
            Severity.OK,
            f"{total} headrace process{'es' if total != 1 else ''} for {len(running_here)} running tr"
            f"{'y' if len(running_here) == 1 else 'ies'} here: {count.get('scheduler', 0)} scheduler, "
            f"{helpers} fork server, {supervisors} supervisor + {task_procs} task process{started_by_tasks} — "
            f"no pool of idle workers (parallelism {parallelism} would be {parallelism} idle processes in a "
            "pre-forked pool)",
            figures,
        )
    )
    for pid, (role, text) in sorted(why.items()):
        if role in ("scheduler", "fork server", "api server"):
            findings.append(Finding(Area.PROCESSES, Severity.OK, f"pid {pid}: {text}", {"pid": pid, "role": role}))
        elif role in ("idle fork server", "scheduler child"):
            findings.append(
                Finding(
                    Area.PROCESSES,
                    Severity.INFO,
                    f"pid {pid}: {text}",
                    {"pid": pid, "role": role},
                    "nothing to do: it exits by itself",
                )
            )
    for pid, proc in sorted(unexplained.items()):
        if proc.ppid in unexplained:
            continue  # reported with the unexplained process it descends from
        below = [c for c in _descendants(pid) if c in unexplained]
        more = f", and {len(below)} headrace process{'es' if len(below) != 1 else ''} below it" if below else ""
        findings.append(
            Finding(
                Area.PROCESSES,
                Severity.WARNING,
                f"unexplained headrace process pid {pid} ({proc.command}){more}",
                {"pid": pid, "ppid": proc.ppid, "command": proc.command, "image": proc.image, "descendants": below},
                "no scheduler job or running try of this database records it: it may belong to another "
                "HEADRACE_HOME / database, or be left over; inspect it (`ps -o pid,ppid,lstart,args -p "
                f"{pid}`) and end it if it is stale",
            )
        )
    return findings
