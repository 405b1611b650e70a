"""Settings: one typed object, built once in ``main()`` and passed down.

Precedence, highest first:

1. environment variables ``HEADRACE__SECTION__KEY`` (e.g. ``HEADRACE__CORE__PARALLELISM=8``),
2. the file ``headrace.toml`` in ``HEADRACE_HOME`` (or the file named by ``HEADRACE_CONFIG``),
3. defaults that fit this machine (``core.parallelism`` = CPU count, not 100).

Section and key names follow Apache Airflow's where the concept is the same
(``core.dags_folder``, ``core.executor``, ``core.parallelism``,
``core.max_active_tasks_per_dag``, ``core.max_active_runs_per_dag``,
``logging.base_log_folder``), so an Airflow user's habits carry over.

Every setting is declared once in ``SPEC`` with its type, default, allowed
range and a one-line doc; ``load_settings`` validates every value and raises
``ConfigError`` naming the key, the source and what is allowed. Nothing here
reads the environment at import time; pass ``environ=`` to inject one in tests.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.exceptions import ConfigError

ENV_PREFIX = "HEADRACE__"


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Option:
    """One setting: its type, default and the range of values it accepts."""

    type: type
    """``str``, ``int``, ``float`` or ``bool``."""
    default: Callable[[Path], Any]
    """Computes the default from ``HEADRACE_HOME`` (so it can fit the machine)."""
    doc: str
    """One line, shown by ``headrace config list``."""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], object] | None = None
    """Further validation of the converted value: raises ``ValueError`` with what is wrong (one line)."""


def _const(value: Any) -> Callable[[Path], Any]:
    return lambda _home: value


def _json_object(value: str) -> dict[str, Any]:
    """``value`` parsed as a JSON object; raises ``ValueError`` saying what is wrong."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def _check_listen_url(value: str) -> None:
    """Refuse a listen_url that is not a direct PostgreSQL URL (``ValueError`` saying why)."""
    if not value:
        return
    if not value.startswith(("postgresql://", "postgresql+psycopg://")):
        raise ValueError("expected a postgresql:// or postgresql+psycopg:// URL")
    if "pgbouncer=" in value:
        raise ValueError("LISTEN needs a direct connection, not one through PgBouncer")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(i)?B?|B)?\s*$", re.IGNORECASE)


def memory_size(value: str) -> int | None:
    """Bytes of a size setting: ``"4GiB"``, ``"500MB"``, ``"1048576"`` (decimal ``KB MB GB TB``, binary ``KiB MiB
    GiB TiB``); ``""`` is None (no limit). Raises ``ValueError`` naming the value."""
    if not value.strip():
        return None
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size: use bytes or a number with a unit such as '4GiB' or '500MB'")
    number, prefix, binary = match.groups()
    power = "KMGT".index(prefix.upper()) + 1 if prefix else 0
    size = int(float(number) * (1024 if binary else 1000) ** power)
    if size <= 0:
        raise ValueError(f"{value!r} must be positive")
    return size


SPEC: dict[str, dict[str, Option]] = {
    "core": {
        "dags_folder": Option(str, lambda h: str(h / "dags"), "Folder the DAG processor reads DAG files from."),
        "executor": Option(
            str, _const("local"), "Executor that runs tries.", choices=("sequential", "local", "celery")
        ),
        "parallelism": Option(
            int, lambda _h: _cpu_count(), "Most tries running at once on this scheduler's executor.", 1, 4096
        ),
        "max_active_tasks_per_dag": Option(
            int, _const(16), "Default max_active_tasks: running+queued tries per DAG.", 1, 100_000
        ),
        "max_active_runs_per_dag": Option(int, _const(16), "Default max_active_runs per DAG.", 1, 100_000),
        "default_pool_slots": Option(int, _const(128), "Slots of default_pool when it is first created.", 0, 1_000_000),
        "xcom_max_size": Option(int, _const(48 * 1024), "Largest XCom value, in bytes of JSON.", 1, 1 << 30),
        "xcom_objectstorage_path": Option(
            str,
            _const(""),
            "fsspec URL under which XCom values of core.xcom_objectstorage_threshold bytes or more are stored, the xcom row "
            "keeping a reference (s3://bucket/prefix, s3://conn_id@bucket/prefix, file:///shared/xcoms; empty: off).",
        ),
        "xcom_objectstorage_threshold": Option(
            int,
            _const(-1),
            "Bytes of serialized JSON from which an XCom value goes to core.xcom_objectstorage_path, as in "
            "Airflow: a smaller value stays in the database (-1: never, every value stays; 0: every value goes).",
            -1,
            1 << 40,
        ),
        "xcom_objectstorage_compression": Option(
            str,
            _const(""),
            "Compression of XCom values written to the object store: empty or none, gzip, bz2 or lzma.",
            choices=("", "none", "gzip", "bz2", "lzma"),
        ),
        "xcom_backend": Option(
            str,
            _const("headrace.authoring.xcom_backend.BaseXCom"),
            "Import path of the XCom backend class (a BaseXCom subclass: serialize_value, deserialize_value, "
            "orm_deserialize_value); see docs/xcom.md.",
        ),
        "default_task_weight_rule": Option(
            str,
            _const("downstream"),
            "weight_rule of the tasks that give none (Airflow's key and default), applied when DAG files are parsed.",
            choices=("downstream", "upstream", "absolute"),
        ),
        "allowed_deserialization_classes": Option(
            str,
            _const("headrace.*"),
            "Classes an XCom value may be rebuilt as when a task pulls it (Airflow's key; glob patterns on the "
            "dotted class name, whitespace-separated; Airflow's default is airflow.*): add your DAG files' "
            "modules (e.g. 'headrace.* my_dag_models.*') to pull their dataclasses and pydantic models.",
        ),
        "allowed_deserialization_classes_regexp": Option(
            str,
            _const(""),
            "As allowed_deserialization_classes, with regular expressions matched at the start of the dotted class "
            "name (Airflow's key).",
        ),
        "max_map_length": Option(
            int,
            _const(1024),
            "Most task instances one mapped task may expand to in a DAG run (Airflow's core.max_map_length); "
            "a task pushing a longer value for a mapped task fails, and so does a mapped task with a longer literal.",
            1,
            1_000_000,
        ),
        "dag_run_conf_overrides_params": Option(
            bool,
            _const(True),
            "A run's conf overrides the params of the same name in its tasks' params context (Airflow's key and "
            "default); false: params are constants, conf is only dag_run.conf.",
        ),
        "dagbag_import_timeout": Option(float, _const(30.0), "Seconds a DAG file may take to import.", 0.1, 3600),
        "load_examples": Option(bool, _const(False), "Also load the bundled example DAGs."),
        "dags_are_paused_at_creation": Option(
            bool,
            _const(True),
            "A DAG parsed for the first time starts paused, unless it sets is_paused_upon_creation "
            "(Airflow's key and default; `headrace standalone` unpauses the bundled examples it creates).",
        ),
        "try_containment": Option(
            str,
            _const("auto"),
            "How a try's processes are held together so none outlives it: cgroup (each try in its own cgroup; "
            "a try fails if none can be made), marker (best effort: environment marker and child subreaper), "
            "auto (cgroup where a hierarchy is writable, else marker).",
            choices=("auto", "cgroup", "marker"),
        ),
        "dag_ignore_file_syntax": Option(
            str,
            _const("regexp"),
            "Syntax of the patterns in .airflowignore / .headraceignore files: regexp (Airflow's default) or glob.",
            choices=("regexp", "glob"),
        ),
        "airflow_imports": Option(
            bool,
            _const(False),
            "DAG files' airflow.* imports (airflow.sdk, airflow.operators.*, ...) get headrace's implementations; "
            "refused while a real airflow package is importable.",
        ),
    },
    "database": {
        "url": Option(
            str,
            lambda h: f"sqlite:///{h / 'headrace.db'}",
            "SQLAlchemy URL of the metadata DB; postgresql+psycopg://… in production. SQLite: ?timeout=<s> "
            "sets the busy timeout (how long a write waits for another's lock; default 30 s).",
        ),
        "pool_size": Option(
            int,
            _const(5),
            "Connections a scheduler, API server, triggerer or CLI keeps open (PostgreSQL; Airflow's "
            "sql_alchemy_pool_size). A supervisor always keeps one.",
            1,
            1000,
        ),
        "max_overflow": Option(
            int,
            _const(10),
            "Connections opened beyond pool_size when all are busy, closed when returned (PostgreSQL; Airflow's "
            "sql_alchemy_max_overflow). A supervisor opens none.",
            0,
            1000,
        ),
        "pool_recycle": Option(
            int,
            _const(1800),
            "Seconds after which a pooled connection is replaced at its next checkout; -1: never (PostgreSQL; "
            "Airflow's sql_alchemy_pool_recycle).",
            -1,
            7 * 86400,
        ),
        "listen_url": Option(
            str,
            _const(""),
            "URL of a direct connection (not through a transaction-mode pooler) on which schedulers LISTEN for "
            "wake-ups (PostgreSQL). Empty: the url, unless it goes through PgBouncer (?pgbouncer=true); then "
            "schedulers see user actions on their next loop (scheduler.loop_interval).",
            check=lambda v: _check_listen_url(str(v)),
        ),
        "outage_tolerance": Option(
            float,
            _const(600.0),
            "Seconds schedulers and supervisors keep retrying through a lost database "
            "(a restart, a stop, a lock held past SQLite's busy timeout) before giving up.",
            0,
            7 * 86400,
        ),
    },
    "scheduler": {
        "allowed_run_id_pattern": Option(
            str,
            _const(r"^[A-Za-z0-9_.~:+-]+$"),
            "Regular expression a run_id given by a user (API, UI, CLI, TriggerDagRunOperator) must match "
            "(Airflow's key and default); others are refused.",
        ),
        "loop_interval": Option(
            float, _const(1.0), "Longest the scheduler sleeps between loops when nothing wakes it (s).", 0.01, 60
        ),
        "dag_dir_list_interval": Option(
            float, _const(5.0), "Seconds between scans of dags_folder for changes.", 0.1, 3600
        ),
        "heartbeat_interval": Option(
            float, _const(5.0), "Seconds between heartbeats of schedulers and tries.", 0.1, 600
        ),
        "task_instance_heartbeat_timeout": Option(
            float,
            _const(300.0),
            "A running try on another host whose heartbeat is older than this (s) is a "
            "zombie (Airflow's name and default; tries on this host are checked by process identity).",
            1,
            86400,
        ),
        "scheduler_health_check_threshold": Option(
            float,
            _const(30.0),
            "/health calls the scheduler unhealthy when its heartbeat is older than this (s).",
            1,
            86400,
        ),
        "trigger_timeout_check_interval": Option(
            float,
            _const(15.0),
            "Seconds between checks for deferred task instances past their defer(timeout=...) (Airflow's key and "
            "default).",
            0.01,
            3600,
        ),
        "task_queued_timeout": Option(
            float, _const(600.0), "A try queued longer than this (s) without starting is queued again.", 1, 86400
        ),
        "lease_ttl": Option(
            float, _const(30.0), "Seconds a scheduler's lease lasts without renewal (SQLite).", 1, 3600
        ),
        "standalone_dag_processor": Option(
            bool,
            _const(False),
            "The scheduler does not parse DAG files: a separate `headrace dag-processor` does (Airflow 2's key and "
            "default; run one when several schedulers share a PostgreSQL database).",
        ),
        "orphaned_tasks_check_interval": Option(
            float,
            _const(300.0),
            "Seconds between checks for tries queued by a scheduler that died (PostgreSQL, several schedulers): "
            "those no supervisor claimed are scheduled again (Airflow's key and default).",
            0.1,
            86400,
        ),
        "catchup_by_default": Option(
            bool,
            _const(False),
            "catchup of DAGs that don't set it (DAG(catchup=None)); applied when a DAG file "
            "is parsed. False, as in Airflow 3.",
        ),
        "create_cron_data_intervals": Option(
            bool,
            _const(False),
            "A cron string as schedule makes data intervals between fire times, each run after its "
            "interval ends (CronDataIntervalTimetable, Airflow 2's meaning) instead of a run at each "
            "fire time with that time as its logical date (CronTriggerTimetable). False, as in Airflow 3.",
        ),
        "create_delta_data_intervals": Option(
            bool,
            _const(False),
            "A timedelta or relativedelta as schedule makes data intervals (DeltaDataIntervalTimetable) "
            "instead of a run every delta (DeltaTriggerTimetable). False, as in Airflow 3.",
        ),
    },
    "triggerer": {
        "capacity": Option(
            int, _const(1000), "Most triggers one triggerer runs at once (Airflow's key and default).", 1, 1_000_000
        ),
        "job_heartbeat_sec": Option(
            float,
            _const(5.0),
            "Seconds between a triggerer's heartbeats (Airflow's key and default); a triggerer silent for twice "
            "this long is dead and its triggers are taken over by another.",
            0.1,
            600,
        ),
        "block_threshold": Option(
            float,
            _const(0.2),
            "Seconds a trigger may hold the triggerer's event loop before it is reported as blocking it (in the "
            "triggerer's log, the task instance's try log and headrace doctor).",
            0.01,
            60,
        ),
        "idle_timeout": Option(
            float,
            _const(30.0),
            "Seconds the triggerer `headrace standalone` starts keeps running once no trigger is left.",
            0,
            86400,
        ),
    },
    "executor": {
        "forkserver_idle_timeout": Option(
            float,
            _const(30.0),
            "Seconds the fork server may sit idle before it exits (started again on demand).",
            0,
            86400,
        ),
        "memory_poll_interval": Option(
            float, _const(0.1), "Seconds between samples of a try's process-tree RSS and CPU.", 0.01, 60
        ),
        "kill_grace_period": Option(
            float, _const(5.0), "Seconds between SIGTERM and SIGKILL when a try is stopped.", 0, 600
        ),
        "callback_timeout": Option(
            float,
            _const(60.0),
            "Seconds a task callback run by the supervisor (after a kill or timeout) may take.",
            0.1,
            3600,
        ),
        "preload_dag_files": Option(
            bool,
            _const(True),
            "Fork server imports each DAG file once and forks tries from it (top-level code runs once per fork server).",
        ),
    },
    "celery": {
        "broker_url": Option(
            str,
            _const("redis://127.0.0.1:6379/0"),
            "Celery broker the celery executor sends tries through: redis://host:port/db or "
            "amqp://user:password@host:5672/vhost (RabbitMQ).",
        ),
        "worker_concurrency": Option(
            int,
            _const(16),
            "Tries a `headrace celery worker` runs at once (its slots: threads, no process until a try runs).",
            1,
            4096,
        ),
        "task_acks_late": Option(
            bool,
            _const(True),
            "Acknowledge a try's message once its supervisor ended, not when it arrived: a worker lost mid-try "
            "gets the message redelivered (the supervisor's claim drops a duplicate).",
        ),
        "worker_prefetch_multiplier": Option(
            int,
            _const(1),
            "Messages a worker reserves per slot beyond the ones it runs (Celery's setting; 1: none waits on a "
            "busy worker).",
            1,
            1000,
        ),
        "broker_transport_options": Option(
            str,
            _const("{}"),
            "JSON object of kombu transport options, for those [celery_broker_transport_options] does not name "
            "(Redis: socket_timeout and socket_connect_timeout default to celery.operation_timeout, "
            "socket_keepalive to true).",
            check=_json_object,
        ),
        "operation_timeout": Option(
            float,
            _const(1.0),
            "Seconds to reach the broker and publish one try's message (the executor refuses the try after "
            "it, and the scheduler gives it back), and for `celery status` replies.",
            0.05,
            600,
        ),
        "worker_memory_limit": Option(
            str,
            _const(""),
            "A worker takes no new try while the RSS of its running tries adds up to more than this "
            "(bytes, or '4GiB', '500MB'; empty: no limit).",
            check=memory_size,
        ),
    },
    "celery_broker_transport_options": {
        "visibility_timeout": Option(
            int,
            _const(86400),
            "Redis (and SQS): seconds before a message that was delivered and not acknowledged is delivered "
            "again (Airflow's default; longer than the longest try, or a running try's message is delivered "
            "twice and the second delivery is dropped by the claim). Set to other than the default, it wins "
            "over a visibility_timeout in celery.broker_transport_options.",
            1,
            365 * 86400,
        ),
        "sentinel_kwargs": Option(
            str,
            _const(""),
            "Redis Sentinel: JSON object of options for the connections to the sentinels (e.g. "
            '{"password": "..."}); empty: none.',
            check=lambda value: _json_object(value) if value.strip() else {},
        ),
    },
    "operators": {
        "default_queue": Option(
            str,
            _const("default"),
            "Queue of tasks that name none (Airflow's operators.default_queue): their tries go to this Celery "
            "queue, and a `headrace celery worker` consumes it when --queues is not given.",
        ),
    },
    "api": {
        "host": Option(str, _const("127.0.0.1"), "Address the API server and web UI listen on."),
        "port": Option(int, _const(8080), "Port of the API server and web UI.", 0, 65535),
        "base_url": Option(
            str, _const(""), "URL users reach the UI at, for links in alerts (empty: http://host:port)."
        ),
        "secret_key": Option(
            str, _const(""), "Key that signs session cookies (empty: generated once into HEADRACE_HOME/secret_key)."
        ),
        "session_lifetime": Option(
            int,
            _const(12 * 3600),
            "Seconds a login session (UI cookie) lasts at most from its login, however busy.",
            60,
            365 * 24 * 3600,
        ),
        "session_idle_timeout": Option(
            int,
            _const(3600),
            "Seconds without a request after which a login session ends (open UI pages poll, so they keep it).",
            60,
            365 * 24 * 3600,
        ),
        "secure_cookies": Option(
            str,
            _const("auto"),
            "Mark the session cookie Secure (HTTPS only): true, false, or auto (when the request came over "
            "HTTPS, directly or from a trusted proxy's X-Forwarded-Proto, or api.base_url is https://).",
            choices=("auto", "true", "false"),
        ),
        "login_max_failures": Option(
            int,
            _const(10),
            "Failed logins (password, HTTP Basic or API token) per username, and per client address, within "
            "api.login_failure_window before further attempts get 429.",
            1,
            1_000_000,
        ),
        "login_failure_window": Option(
            float,
            _const(300.0),
            "Seconds a failed login counts against its username and client address.",
            1,
            86400,
        ),
        "password_hash_concurrency": Option(
            int,
            lambda _h: max(1, _cpu_count() // 2),
            "Password checks (argon2id, ~64 MiB each) run at once, off the event loop; more wait their turn.",
            1,
            256,
        ),
        "page_size_max": Option(int, _const(1000), "Largest page a list endpoint returns (limit=).", 1, 100_000),
        "max_request_bytes": Option(
            int,
            _const(1024 * 1024),
            "Largest request body the server reads, in bytes; a larger one is refused (413) before it is parsed.",
            1024,
            1 << 30,
        ),
        "max_conf_bytes": Option(
            int,
            _const(64 * 1024),
            "Largest DAG run conf, in bytes of compact UTF-8 JSON, for a trigger from the API, the UI or "
            "`dags trigger` (larger: 413 / error).",
            2,
            1 << 30,
        ),
        "hsts_max_age": Option(
            int,
            _const(0),
            "Seconds of Strict-Transport-Security sent on answers over HTTPS or when api.base_url is https:// "
            "(0: no HSTS header).",
            0,
            10 * 365 * 24 * 3600,
        ),
    },
    "secrets": {
        "fernet_key": Option(
            str,
            _const(""),
            "Fernet key encrypting variables and connections at rest (empty: HEADRACE_HOME/fernet.key).",
        ),
    },
    "metrics": {
        "scheduler_port": Option(
            int,
            _const(8794),
            "Port of the scheduler's own Prometheus /metrics (0: off; standalone uses the API's).",
            0,
            65535,
        ),
        "scheduler_host": Option(
            str,
            _const("127.0.0.1"),
            "Address the scheduler's /metrics listens on (no login there: keep it on localhost or a private network).",
        ),
        "statsd_host": Option(str, _const(""), "StatsD host to also send metrics to (empty: off)."),
        "statsd_port": Option(int, _const(8125), "StatsD UDP port.", 1, 65535),
        "statsd_prefix": Option(str, _const("headrace"), "Prefix of every StatsD metric name."),
    },
    "alerts": {
        "notify_on": Option(
            str,
            _const("failed,run_failed,deadline_missed"),
            "Comma-separated events that notify: failed (final task failure), up_for_retry, run_failed, "
            "run_success, deadline_missed.",
        ),
        "email_to": Option(str, _const(""), "Comma-separated addresses that get alert emails (empty: no email)."),
        "email_from": Option(str, _const("headrace@localhost"), "From: address of alert emails."),
        "smtp_host": Option(str, _const("localhost"), "SMTP server for alert emails."),
        "smtp_port": Option(int, _const(25), "SMTP port.", 1, 65535),
        "smtp_user": Option(str, _const(""), "SMTP login (empty: no AUTH)."),
        "smtp_password": Option(str, _const(""), "SMTP password."),
        "smtp_starttls": Option(bool, _const(False), "Upgrade the SMTP connection with STARTTLS."),
        "smtp_ssl": Option(bool, _const(False), "Connect to SMTP over TLS (SMTPS)."),
        "webhook_url": Option(
            str, _const(""), "Comma-separated URLs that get a Slack-compatible JSON POST per alert (empty: none)."
        ),
        "timeout": Option(float, _const(10.0), "Seconds one email or webhook delivery may take.", 0.1, 600),
        "sweep_lookback": Option(
            float,
            _const(3600.0),
            "Seconds a starting scheduler looks back for ended tries and DAG runs with no alert written yet "
            "(e.g. during a scheduler outage).",
            0,
            30 * 24 * 3600,
        ),
    },
    "logging": {
        "base_log_folder": Option(str, lambda h: str(h / "logs"), "Folder for per-try log files."),
        "remote_logging": Option(
            bool,
            _const(False),
            "Ship try logs to logging.remote_base_log_folder and read them from there (Airflow's switch: "
            "false ignores that folder).",
        ),
        "max_try_log_bytes": Option(
            int,
            _const(100 * 1024 * 1024),
            "Largest try log in bytes: past it the log keeps its head and tail and says how much was dropped.",
            64 * 1024,
            1 << 50,
        ),
        "logging_level": Option(
            str, _const("INFO"), "Level of headrace's own logs.", choices=("DEBUG", "INFO", "WARNING", "ERROR")
        ),
        "remote_base_log_folder": Option(
            str,
            _const(""),
            "fsspec URL that try logs are shipped to while they run and when they end, and read from when the "
            "local file is gone (s3://bucket/logs, gs://bucket/logs, file:///shared/logs), with "
            "logging.remote_logging = true.",
        ),
        "remote_log_conn_id": Option(
            str,
            _const(""),
            "Connection whose login/password and extra (endpoint_url, region_name, storage_options) reach "
            "logging.remote_base_log_folder (empty: the storage library's own credentials, e.g. AWS_* variables).",
        ),
        "remote_log_interval": Option(
            float,
            _const(5.0),
            "Seconds between uploads of a running try's log (a supervisor killed loses at most this much).",
            0.1,
            3600,
        ),
        "delete_local_logs": Option(
            bool,
            _const(False),
            "Remove a try's local log file once its final upload to logging.remote_base_log_folder succeeded.",
        ),
    },
}


@dataclass(frozen=True)
class Settings:
    """The effective configuration: ``values[section][key]`` plus where each came from."""

    home: Path
    """``HEADRACE_HOME``: holds headrace.toml, the SQLite DB, logs and dags by default."""
    values: Mapping[str, Mapping[str, Any]]
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """``sources[section][key]`` is ``"default"``, ``"file"`` or ``"env"``."""

    def get(self, section: str, key: str) -> Any:
        """Return one value, of the option's declared type (``SPEC``); raises ``ConfigError`` for an unknown key.

        Callers that need a type use :meth:`get_float`, :meth:`get_int`,
        :meth:`get_str` or :meth:`get_bool` instead of casting.
        """
        try:
            return self.values[section][key]
        except KeyError:
            raise ConfigError(f"unknown setting {section}.{key}", key=f"{section}.{key}") from None

    def get_float(self, section: str, key: str) -> float:
        """A number setting (seconds, ratios) as ``float``; raises ``ConfigError`` if the option is not a number."""
        value = self.get(section, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"setting {section}.{key} is not a number: {value!r}", key=f"{section}.{key}")
        return float(value)

    def get_int(self, section: str, key: str) -> int:
        """An integer setting (counts, bytes); raises ``ConfigError`` if the option is not an integer."""
        value = self.get(section, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"setting {section}.{key} is not an integer: {value!r}", key=f"{section}.{key}")
        return value

    def get_str(self, section: str, key: str) -> str:
        """A text setting; raises ``ConfigError`` if the option is not text."""
        value = self.get(section, key)
        if not isinstance(value, str):
            raise ConfigError(f"setting {section}.{key} is not text: {value!r}", key=f"{section}.{key}")
        return value

    def get_bool(self, section: str, key: str) -> bool:
        """A yes/no setting; raises ``ConfigError`` if the option is not a boolean."""
        value = self.get(section, key)
        if not isinstance(value, bool):
            raise ConfigError(f"setting {section}.{key} is not a boolean: {value!r}", key=f"{section}.{key}")
        return value

    # Typed shortcuts for the settings read on hot paths.
    @property
    def database_url(self) -> str:
        return str(self.values["database"]["url"])

    @property
    def dags_folder(self) -> Path:
        return Path(self.values["core"]["dags_folder"])

    @property
    def base_log_folder(self) -> Path:
        return Path(self.values["logging"]["base_log_folder"])

    @property
    def parallelism(self) -> int:
        return int(self.values["core"]["parallelism"])

    @property
    def executor(self) -> str:
        return str(self.values["core"]["executor"])

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> Settings:
        """Return a copy with some values replaced (validated like any source)."""
        values = {s: dict(v) for s, v in self.values.items()}
        sources = {s: dict(v) for s, v in self.sources.items()}
        for section, keys in overrides.items():
            for key, raw in keys.items():
                values[section][key] = _convert(section, key, raw, "override")
                sources[section][key] = "override"
        return Settings(home=self.home, values=values, sources=sources)

    def to_env(self) -> dict[str, str]:
        """Return every value as ``HEADRACE__SECTION__KEY`` variables (for child processes)."""
        env = {"HEADRACE_HOME": str(self.home)}
        for section, keys in self.values.items():
            for key, value in keys.items():
                env[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = str(value)
        return env


def _convert(section: str, key: str, raw: Any, source: str) -> Any:
    option = SPEC[section][key]
    where = f"{section}.{key} (from {source})"
    try:
        if option.type is bool:
            if isinstance(raw, bool):
                value: Any = raw
            elif str(raw).strip().lower() in ("1", "true", "yes", "on"):
                value = True
            elif str(raw).strip().lower() in ("0", "false", "no", "off"):
                value = False
            else:
                raise ValueError
        elif option.type is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value = int(raw)
        elif option.type is float:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        else:
            value = str(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: expected {option.type.__name__}, got {raw!r}", key=f"{section}.{key}", source=source
        ) from None
    if option.minimum is not None and value < option.minimum:
        raise ConfigError(
            f"{where}: {value!r} is below the minimum {option.minimum:g}", key=f"{section}.{key}", source=source
        )
    if option.maximum is not None and value > option.maximum:
        raise ConfigError(
            f"{where}: {value!r} is above the maximum {option.maximum:g}", key=f"{section}.{key}", source=source
        )
    if option.choices is not None and value not in option.choices:
        raise ConfigError(
            f"{where}: {value!r} is not one of {', '.join(option.choices)}", key=f"{section}.{key}", source=source
        )
    if option.check is not None:
        try:
            option.check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}", key=f"{section}.{key}", source=source) from None
    return value


def config_warnings(settings: Settings) -> list[str]:
    """What in ``settings`` is valid but most likely not meant: one line each (said once at start-up)."""
    warnings = []
    if settings.get_str("logging", "remote_base_log_folder").strip() and not settings.get_bool(
        "logging", "remote_logging"
    ):
        warnings.append(
            "logging.remote_base_log_folder is set but logging.remote_logging is false: try logs are neither "
            "shipped there nor read from there (set logging.remote_logging = true, as in Airflow)"
        )
    return warnings


def default_home(environ: Mapping[str, str]) -> Path:
    """``HEADRACE_HOME``, or ``~/headrace``."""
    return Path(environ.get("HEADRACE_HOME") or Path.home() / "headrace").expanduser()


def load_settings(environ: Mapping[str, str] | None = None, *, config_file: Path | None = None) -> Settings:
    """Build the Settings from defaults, the TOML file and the environment.

    ``environ`` defaults to ``os.environ``. The file is ``config_file``, else
    ``HEADRACE_CONFIG``, else ``HEADRACE_HOME/headrace.toml`` (a missing file is
    fine). Raises ``ConfigError`` for an unknown section/key, a wrong type, a
    value out of range, or a file that is not valid TOML.
    """
    env = os.environ if environ is None else environ
    home = default_home(env)
    values: dict[str, dict[str, Any]] = {s: {k: o.default(home) for k, o in opts.items()} for s, opts in SPEC.items()}
    sources: dict[str, dict[str, str]] = {s: {k: "default" for k in opts} for s, opts in SPEC.items()}

    path = config_file or Path(env.get("HEADRACE_CONFIG") or home / "headrace.toml")
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", source=str(path)) from None
        for section, keys in data.items():
            if section not in SPEC or not isinstance(keys, dict):
                raise ConfigError(
                    f"{path}: unknown section [{section}]; known: {', '.join(SPEC)}", key=section, source=str(path)
                )
            for key, raw in keys.items():
                if key not in SPEC[section]:
                    raise ConfigError(
                        f"{path}: unknown key {section}.{key}; known: {', '.join(SPEC[section])}",
                        key=f"{section}.{key}",
                        source=str(path),
                    )
                values[section][key] = _convert(section, key, raw, str(path))
                sources[section][key] = "file"

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in SPEC or parts[1] not in SPEC[parts[0]]:
            raise ConfigError(
                f"unknown setting in environment variable {name}; expected HEADRACE__SECTION__KEY "
                f"with a section among {', '.join(SPEC)}",
                key=name,
                source="env",
            )
        section, key = parts
        values[section][key] = _convert(section, key, raw, f"env {name}")
        sources[section][key] = "env"

    return Settings(home=home, values=values, sources=sources)
