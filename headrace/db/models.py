"""Tables of the metadata database (SQLAlchemy 2 declarative).

All timestamps are stored in UTC and come back timezone-aware
(:class:`UtcDateTime`). States are stored as their string values; ``none`` is
the string ``"none"``, not NULL, so compare-and-set is a plain equality.

Tables:

* ``dag`` — one row per DAG id: file, pause flag, schedule summary, the next
  run the scheduler will create, and the current serialized version.
* ``dag_version`` — every distinct serialized structure of a DAG (by hash).
* ``dag_version_task`` — each task's entry of a ``dag_version``'s document, one row per task (revision 0018),
  so a try reads its task's entry without reading the whole DAG's document.
* ``dag_file`` — each DAG file seen, with the mtime/size last parsed, so only
  changed files are parsed again.
* ``import_error`` — DAG files that failed to import (file, line, message).
* ``dag`` — one DAG id as last parsed; ``dag_display_name`` since revision 0011.
* ``dag_warning`` — what a DAG's author wrote that headrace ignores (Airflow's
  DAG warnings), replaced on every parse of the DAG's file (revision 0006).
* ``dag_run`` — one run of a DAG (run_id, logical date, data interval).
* ``task_instance`` — one task in one DAG run at one ``map_index`` (-1: not mapped), with its state and
  try_number (revision 0010 added ``map_index``).
* ``task_try`` — one row per try: host, pids and process start times, times,
  exit code or signal, peak RSS, CPU seconds and end reason.
* ``task_reschedule`` — one row per poke of a sensor in reschedule mode that found its criteria unmet (Airflow's
  ``task_reschedule``: try_number, the poke's start and end, the next poke's date; revision 0014).
* ``xcom`` — values passed between task instances, as JSON text (by map index since revision 0010).
* ``task_map`` — the length (and dict keys) of a value a task pushed for a mapped task downstream to
  expand over (Airflow's ``task_map``; revision 0010).
* ``rendered_task_instance_fields`` — a task instance's template fields as its latest try rendered them
  (revision 0009).
* ``pool`` — named slot limits.
* ``scheduler_job`` — each scheduler process and its heartbeat; also the
  SQLite lease (one scheduler at a time).
* ``user`` / ``api_token`` — logins of the UI and API, with roles; tokens by hash.
* ``user_session`` — login sessions of the UI, by the hash of the cookie's session id (revision 0007).
* ``variable`` / ``connection`` — settings and credentials tasks read, secrets
  Fernet-encrypted at rest.
* ``deadline_miss`` — DAG runs and task instances that missed their deadline
  (one row each, so the miss is reported once).
* ``notification`` — the alert outbox: one row per event, marked when sent.
* ``asset``, ``asset_alias``, ``asset_event``, ``asset_dag_run_queue`` and the references between assets,
  DAGs and tasks: data-aware scheduling (revision 0015, :mod:`headrace.db.asset_models`).
* ``trigger`` and ``triggerer_job``: deferral (revision 0016, :mod:`headrace.db.trigger_models`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    insert,
)
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from headrace.db.asset_models import (
    AssetAliasAssetModel,
    AssetAliasModel,
    AssetDagRunQueue,
    AssetEvent,
    AssetModel,
    DagRunAssetEvent,
    DagScheduleAssetAliasReference,
    DagScheduleAssetReference,
    TaskInletAssetReference,
    TaskOutletAssetReference,
)
from headrace.db.base import ID, NEVER_REUSED, Base, UtcDateTime
from headrace.db.trigger_models import Trigger, TriggererJob
from headrace.states import DagRunState, TaskInstanceState


class DagModel(Base):
    """One DAG id as last parsed."""

    __tablename__ = "dag"

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    fileloc: Mapped[str] = mapped_column(Text)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    """False once its file no longer defines it."""
    description: Mapped[str | None] = mapped_column(Text)
    dag_display_name: Mapped[str | None] = mapped_column(String(2000))
    """The name the UI shows (None: the dag_id)."""
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    schedule: Mapped[str | None] = mapped_column(String(250))
    """Human summary of the schedule (cron string, preset, interval)."""
    max_active_runs: Mapped[int] = mapped_column(Integer)
    max_active_tasks: Mapped[int] = mapped_column(Integer)
    version_hash: Mapped[str] = mapped_column(String(64))
    """Hash of the current ``dag_version``."""
    last_parsed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_logical_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_run_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the next scheduled run may be created; NULL when none is due."""


class DagVersion(Base):
    """One distinct serialized structure of a DAG."""

    __tablename__ = "dag_version"
    __table_args__ = (UniqueConstraint("dag_id", "version_hash"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    version_hash: Mapped[str] = mapped_column(String(64))
    serialized: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DagVersionTask(Base):
    """One task's entry (``serialized["tasks"][task_id]``) of a ``dag_version``, written with the version.

    The try path reads its task's entry by primary key: reading it out of the whole document costs time in
    proportion to the DAG's size (a 10,000-task DAG's document is about 5 MB) on every claim.
    """

    __tablename__ = "dag_version_task"

    dag_version_id: Mapped[int] = mapped_column(ForeignKey("dag_version.id", ondelete="CASCADE"), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    serialized: Mapped[dict[str, Any]] = mapped_column(JSON)


@sa_event.listens_for(DagVersion, "after_insert")
def _write_task_entries(_mapper: Mapper[DagVersion], connection: DbConnection, version: DagVersion) -> None:
    """Every ``dag_version`` inserted through the ORM gets its ``dag_version_task`` rows in the same flush."""
    tasks = (version.serialized or {}).get("tasks") or {}
    if tasks:
        connection.execute(
            insert(DagVersionTask),
            [{"dag_version_id": version.id, "task_id": tid, "serialized": entry} for tid, entry in tasks.items()],
        )


class DagFile(Base):
    """A DAG file as last parsed."""

    __tablename__ = "dag_file"

    fileloc: Mapped[str] = mapped_column(Text, primary_key=True)
    mtime: Mapped[float] = mapped_column(Float)
    size: Mapped[int] = mapped_column(BigInteger)
    last_parsed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    parse_seconds: Mapped[float] = mapped_column(Float)
    dag_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class ImportError_(Base):  # noqa: N801 - ImportError is a builtin
    """A DAG file that failed to import."""

    __tablename__ = "import_error"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    fileloc: Mapped[str] = mapped_column(Text, index=True)
    lineno: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    stacktrace: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)


class DagWarning(Base):
    """Something a DAG's author wrote that headrace accepts and ignores (an Airflow argument not supported yet)."""

    __tablename__ = "dag_warning"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    warning_type: Mapped[str] = mapped_column(String(50))
    """``unsupported_argument`` or ``unused_default_arg`` (see ``headrace.authoring.dag_warnings``)."""
    message: Mapped[str] = mapped_column(Text)
    """One line naming the argument (and the task it was given to)."""
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    """When the DAG's file was parsed."""


class DagRun(Base):
    """One run of a DAG."""

    __tablename__ = "dag_run"
    __table_args__ = (
        UniqueConstraint("dag_id", "run_id"),
        Index("ix_dag_run_state", "state", "dag_id"),
        Index("ix_dag_run_end_date", "end_date"),  # deadline checks and the alert sweep read runs by end time
        # the previous successful run (the context's prev_*_success), read when a try is claimed
        Index("ix_dag_run_dag_state_logical_date", "dag_id", "state", "logical_date"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    run_type: Mapped[str] = mapped_column(String(20))
    """``scheduled``, ``manual``, ``backfill`` or ``asset_triggered``."""
    logical_date: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(20), default=DagRunState.QUEUED.value)
    conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dag_version_id: Mapped[int] = mapped_column(ForeignKey("dag_version.id"))
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    callbacks_done: Mapped[bool] = mapped_column(Boolean, default=False)
    """True once the DAG-level success/failure callback of this run has run."""


class TaskInstance(Base):
    """One task in one DAG run at one map index."""

    __tablename__ = "task_instance"
    __table_args__ = (
        UniqueConstraint("dag_run_id", "task_id", "map_index"),
        Index("ix_ti_state", "state", "dag_id"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_run_id: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    """-1 for a task that is not mapped (or a mapped task not expanded yet); 0..n-1 for the expanded indices."""
    state: Mapped[str] = mapped_column(String(20), default=TaskInstanceState.NONE.value)
    try_number: Mapped[int] = mapped_column(Integer, default=0)
    """Number of the latest try queued (0: never queued)."""
    max_tries: Mapped[int] = mapped_column(Integer, default=0)
    """The task's ``retries``: a failed try number n is retried while n <= max_tries."""
    priority_weight: Mapped[int] = mapped_column(Integer, default=1)
    pool: Mapped[str] = mapped_column(String(256), default="default_pool")
    pool_slots: Mapped[int] = mapped_column(Integer, default=1)
    queue: Mapped[str] = mapped_column(String(256), default="default")
    next_retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))
    """End reason of the latest try (see ``EndReason``), or why it never ran."""
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rendered_map_index: Mapped[str | None] = mapped_column(String(250))
    """The task's ``map_index_template`` as the latest try that reported its end rendered it (at most 250
    characters; None without a template): the label the UI and API show for a mapped index."""
    reschedule_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the next poke of a sensor in reschedule mode is due: set with ``up_for_reschedule`` and kept while
    that poke is scheduled, queued and running (it tells the queuer and the claim that the poke continues the
    current ``try_number``); cleared by every other change of state (revision 0014)."""
    trigger_id: Mapped[int | None] = mapped_column(ID, ForeignKey("trigger.id", ondelete="SET NULL"), index=True)
    """The trigger a ``deferred`` task instance waits on (revision 0016)."""
    trigger_timeout: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When a deferral times out (``defer(timeout=...)``): the task resumes to fail with TaskDeferralTimeout."""
    next_method: Mapped[str | None] = mapped_column(String(1000))
    """The method a deferred task resumes in (``__fail__``: its trigger failed or timed out). Set with
    ``deferred`` and kept until the resumed try runs (it tells the queuer and the claim that the try goes on)."""
    next_kwargs: Mapped[str | None] = mapped_column(Text)
    """JSON text (XCom's types) of the keyword arguments of ``next_method``; ``event`` once the trigger fired."""
    external_executor_id: Mapped[str | None] = mapped_column(String(250))
    """The id of the latest queueing of the try, which the executor's message carries (the Celery task id):
    new each time the try is queued, written in that transaction; cleared when a queued try is given back
    (revision 0017)."""
    queued_by_job_id: Mapped[int | None] = mapped_column(Integer)
    """The ``scheduler_job`` that queued the current try (Airflow's column): when that scheduler dies, another
    gives back the queued tries no supervisor claimed (revision 0019)."""


# A run's task instances in one state, in queueing order (priority_weight descending, then map index and id):
# the scheduler reads the first few scheduled ones of each running run from it, not all of them (revision 0020).
Index(
    "ix_ti_run_state_order",
    TaskInstance.dag_run_id,
    TaskInstance.state,
    TaskInstance.priority_weight.desc(),
    TaskInstance.map_index,
    TaskInstance.id,
)


class TaskTry(Base):
    """One try of a task instance, with the identity of the processes that ran it."""

    __tablename__ = "task_try"
    __table_args__ = (UniqueConstraint("task_instance_id", "try_number"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    task_instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id", ondelete="CASCADE"), index=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    """The task instance's map index (-1: not mapped)."""
    try_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    """``running`` while it runs, then the state the task instance got from it."""
    hostname: Mapped[str] = mapped_column(String(250))
    supervisor_pid: Mapped[int] = mapped_column(Integer)
    supervisor_start_time: Mapped[float] = mapped_column(Float)
    """The supervisor's process creation time (s since epoch, psutil): tells pid reuse apart."""
    pid: Mapped[int | None] = mapped_column(Integer)
    """The task process's pid, recorded by the supervisor right after it started it."""
    process_start_time: Mapped[float | None] = mapped_column(Float)
    start_date: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    """Indexed: ``headrace doctor`` and the resources page read tries by time window."""
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    """Signal number that ended the task process, if a signal did."""
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    """Highest RSS of the whole process tree seen by the supervisor, in bytes."""
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    """User + system CPU time of the process tree, in seconds."""
    end_reason: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    """One-line error message of a failed try."""
    log_path: Mapped[str] = mapped_column(Text)
    containment: Mapped[str | None] = mapped_column(String(20))
    """How the try's processes were held together: ``cgroup`` (its own cgroup) or ``marker`` (best-effort:
    the supervisor's descendants and processes carrying the try's environment marker)."""
    processes_left: Mapped[int | None] = mapped_column(Integer)
    """Processes of the try still running once its task process had ended (escaped descendants)."""
    processes_killed: Mapped[int | None] = mapped_column(Integer)
    """Of ``processes_left``, how many the supervisor killed (SIGKILL) before it recorded the try."""


class TaskReschedule(Base):
    """One poke of a sensor in reschedule mode whose criteria were not met (Airflow's ``task_reschedule``).

    The poke's process ran from ``start_date`` to ``end_date``; the next poke of the same try is due at
    ``reschedule_date``. The sensor's ``timeout`` counts from the earliest ``start_date`` since the task
    instance was last cleared.
    """

    __tablename__ = "task_reschedule"
    __table_args__ = (Index("ix_task_reschedule_ti_try", "task_instance_id", "try_number"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    task_instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    try_number: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[datetime] = mapped_column(UtcDateTime)
    """When the poke's process was claimed."""
    end_date: Mapped[datetime] = mapped_column(UtcDateTime)
    """When the poke ended (its outcome was recorded)."""
    reschedule_date: Mapped[datetime] = mapped_column(UtcDateTime)
    """When the next poke is due."""


class XCom(Base):
    """A value pushed by a task instance, as JSON text."""

    __tablename__ = "xcom"
    __table_args__ = (UniqueConstraint("dag_run_id", "task_id", "map_index", "key"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_run_id: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    """The pushing task instance's map index (-1: not mapped)."""
    key: Mapped[str] = mapped_column(String(512))
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TaskMap(Base):
    """What a mapped task downstream expands over: the length of a value a task instance pushed (Airflow's
    ``task_map``). Written with the ``return_value`` XCom of a task whose output a mapped task maps over."""

    __tablename__ = "task_map"

    dag_run_id: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The pushing task instance's map index (-1: not mapped)."""
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    length: Mapped[int] = mapped_column(Integer)
    """Number of items of the pushed list or dict."""
    keys: Mapped[list[str] | None] = mapped_column(JSON)
    """The keys of a pushed dict, in order; NULL for a list."""


class RenderedTaskInstanceFields(Base):
    """The template fields of a task instance as its latest try rendered them (Airflow's
    ``rendered_task_instance_fields``): recorded by the supervisor when the task process has rendered them,
    shown in the UI. Secrets the task fetched are already masked."""

    __tablename__ = "rendered_task_instance_fields"

    task_instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id", ondelete="CASCADE"), primary_key=True)
    try_number: Mapped[int] = mapped_column(Integer)
    """The try that rendered them."""
    rendered_fields: Mapped[dict[str, str]] = mapped_column(JSON)
    """``{field name: rendered text}`` in the task's ``template_fields`` order."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Pool(Base):
    """A named limit on how many slots running tries may take at once."""

    __tablename__ = "pool"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)


class SchedulerJob(Base):
    """A scheduler process: its identity and heartbeat. The row holding the lease is the active one."""

    __tablename__ = "scheduler_job"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    hostname: Mapped[str] = mapped_column(String(250))
    pid: Mapped[int] = mapped_column(Integer)
    process_start_time: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Lease(Base):
    """A named lease held by one scheduler job until ``expires_at`` (SQLite: one scheduler)."""

    __tablename__ = "lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder_job_id: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- users, secrets, alerts (revision 0002) ------------------------------------


class User(Base):
    """Someone who may log in to the UI or API, with one role."""

    __tablename__ = "user"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    """argon2id hash (argon2-cffi's encoded form)."""
    role: Mapped[str] = mapped_column(String(20))
    """``viewer``, ``operator`` or ``admin``."""
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A token a script sends as ``Authorization: Bearer …``; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Hex SHA-256 of the whole token."""
    prefix: Mapped[str] = mapped_column(String(16))
    """First characters of the token, shown in listings so a user can tell tokens apart."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UserSession(Base):
    """A login session of the UI (or of ``POST /api/v1/auth/login``): the cookie names it, the row makes it valid.

    The cookie holds a random session id; only its SHA-256 is stored, so a stolen database yields no
    working cookie. Deleting the row ends the session at once (logout, password or role change, user
    deleted: the foreign key cascades), see ``headrace.api.sessions``.
    """

    __tablename__ = "user_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Hex SHA-256 of the session id in the cookie."""
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    """Latest request (updated at most once a minute), for the idle timeout."""
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    """Login time plus ``api.session_lifetime``: the session ends then however busy it is."""


class Variable(Base):
    """A key/value setting tasks read; the value is Fernet-encrypted at rest."""

    __tablename__ = "variable"

    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    """Fernet token of the UTF-8 value (see ``headrace.crypto``)."""
    description: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Connection(Base):
    """How to reach an outside system; ``password`` and ``extra`` are Fernet-encrypted at rest."""

    __tablename__ = "connection"

    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    conn_type: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(500))
    port: Mapped[int | None] = mapped_column(Integer)
    login: Mapped[str | None] = mapped_column(String(500))
    password: Mapped[str | None] = mapped_column(Text)
    """Fernet token of the password, or NULL."""
    schema: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[str | None] = mapped_column(Text)
    """Fernet token of a JSON object of extra fields, or NULL."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeadlineMiss(Base):
    """A DAG run (``task_id`` = ``""``) or task instance that missed its deadline; one row, ever."""

    __tablename__ = "deadline_miss"
    __table_args__ = (UniqueConstraint("dag_run_id", "task_id"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_run_id: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250), default="")
    deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    callback_done: Mapped[bool] = mapped_column(Boolean, default=False)
    """True once the deadline-miss callback was started (compare-and-set: at most once)."""


class Notification(Base):
    """An alert to deliver (outbox): created once per event, delivered by the notifier, marked sent."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("event_key"), Index("ix_notification_pending", "sent_at", "id"))

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(600))
    """What happened, unique: e.g. ``failed:<dag_id>:<run_id>:<task_id>:<try_number>`` (so an event notifies once)."""
    event: Mapped[str] = mapped_column(String(40))
    """``failed``, ``up_for_retry``, ``run_failed``, ``run_success``, ``deadline_missed``."""
    channel: Mapped[str] = mapped_column(String(20), default="", server_default="")
    """Where it goes: ``email`` or ``webhook`` (one row per channel, so each is delivered once; revision 0003)."""
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(String(250))
    task_id: Mapped[str | None] = mapped_column(String(250))
    try_number: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Not before this time (retry backoff, and a claim while one deliverer sends it); NULL: now."""


__all__ = [
    "ID",
    "NEVER_REUSED",
    "ApiToken",
    "AssetAliasAssetModel",
    "AssetAliasModel",
    "AssetDagRunQueue",
    "AssetEvent",
    "AssetModel",
    "Base",
    "Connection",
    "DagFile",
    "DagModel",
    "DagRun",
    "DagRunAssetEvent",
    "DagScheduleAssetAliasReference",
    "DagScheduleAssetReference",
    "DagVersion",
    "DagVersionTask",
    "DagWarning",
    "DeadlineMiss",
    "ImportError_",
    "Lease",
    "Notification",
    "Pool",
    "RenderedTaskInstanceFields",
    "SchedulerJob",
    "TaskInletAssetReference",
    "TaskInstance",
    "TaskMap",
    "TaskOutletAssetReference",
    "TaskTry",
    "Trigger",
    "TriggererJob",
    "User",
    "UserSession",
    "UtcDateTime",
    "Variable",
    "XCom",
]
